"""One router per resource; `routers` lists them for the app to include."""

from fastapi import APIRouter

from streamapp.web.api.routes import applications, asyncapi, dashboard, health, metrics, users

# Included one by one on the app: a router of routers costs a matching level per request.
routers: list[APIRouter] = [
    applications.router,
    users.router,
    health.router,
    metrics.router,
    dashboard.router,
    asyncapi.router,
]
