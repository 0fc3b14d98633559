"""One router per resource, combined in `router`."""

from fastapi import APIRouter

from streamapp.web.api.routes import applications, health, metrics, users

router = APIRouter()
router.include_router(applications.router)
router.include_router(users.router)
router.include_router(health.router)
router.include_router(metrics.router)
