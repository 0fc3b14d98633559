"""The REST API (FastAPI): `create_api()` builds it; `routes/` holds one router per resource.

`uvicorn streamapp.web.api:api` works too, yet importing this package reads no settings.
"""

from __future__ import annotations

from fastapi import FastAPI

from streamapp.web.api.app import create_api

__all__ = ["create_api"]


def __getattr__(name: str) -> FastAPI:
    if name == "api":
        return create_api()
    raise AttributeError(name)
