"""/applications: file one, read one, list them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import Field

from streamapp import tracing
from streamapp.logs import current_request_id
from streamapp.models.schemas import (
    ApplicationCreate,
    ApplicationCreatedResponse,
    ApplicationPublic,
    ApplicationsPage,
    UserName,
)
from streamapp.models.tables import STATUS_NEW
from streamapp.services import applications as applications_service
from streamapp.services.applications import Replayed
from streamapp.services.filing import Filer
from streamapp.web.api.deps import (
    IDEMPOTENCY_KEY_PARAMETER,
    DatabaseDep,
    ProcessedFeedDep,
    idempotency_key,
    query_parameters,
    read_query,
)
from streamapp.web.api.errors import ERROR_BODY, ERROR_RESPONSES, WRITE_ERRORS
from streamapp.web.api.middleware import extend_deadline
from streamapp.web.api.pagination import PageQuery, page_response
from streamapp.web.api.responses import json_response

router = APIRouter(prefix="/applications", tags=["applications"], responses=ERROR_RESPONSES)

ApplicationId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApplicationCreatedResponse,
    responses=WRITE_ERRORS,
    openapi_extra={"parameters": [IDEMPOTENCY_KEY_PARAMETER]},
)
async def create_application(application_in: ApplicationCreate, request: Request) -> Response:
    """File an application: store it and publish it to `new_applications`."""
    # The hot path: its header and filer come from the request, not FastAPI's dependencies
    # (see deps.idempotency_key).
    key = idempotency_key(request)
    filer: Filer = request.app.state.filer
    result = await filer.file(
        application_in,
        idempotency_key=key,
        request_id=current_request_id.get(),
        traceparent=tracing.current_traceparent(),
    )
    application = ApplicationPublic.model_validate(result.application)
    headers = {"Location": f"/applications/{application.id}"}
    if isinstance(result, Replayed):
        headers["Idempotent-Replayed"] = "true"
    body = ApplicationCreatedResponse(id=application.id, application=application)
    return json_response(body, status.HTTP_201_CREATED, headers)


class ApplicationsQuery(PageQuery):
    user_name: Annotated[UserName | None, Field(description="Only this user's.")] = None


@router.get(
    "",
    response_model=ApplicationsPage,
    openapi_extra=query_parameters(ApplicationsQuery),
)
async def list_applications(request: Request) -> Response:
    """List applications, newest first, optionally of one user."""
    query = read_query(request, ApplicationsQuery)
    pagination = query.pagination
    found = await applications_service.get_all(
        db=request.app.state.db, **pagination.bounds, user_name=query.user_name
    )
    return page_response("applications", found, pagination)


WAIT_MAX = 30.0
Wait = Annotated[
    float,
    Query(
        ge=0,
        le=WAIT_MAX,
        description="Seconds (0-30) to wait for the application to be processed: the answer "
        "comes as soon as it is, or after that long with its status then.",
    ),
]


@router.get("/{application_id}", response_model=ApplicationPublic, responses={404: ERROR_BODY})
async def get_application(
    application_id: ApplicationId, db: DatabaseDep, feed: ProcessedFeedDep, wait: Wait = 0
) -> Response:
    """Read one application, optionally waiting for it to be processed."""
    row = await applications_service.get(db=db, application_id=application_id)
    if wait and row["status"] == STATUS_NEW:
        with feed.waiting_for(application_id) as processed:
            # Read again once registered, so that an announcement in between is not missed.
            row = await applications_service.get(db=db, application_id=application_id)
            if row["status"] == STATUS_NEW:
                extend_deadline(wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(processed, wait)
                row = await applications_service.get(db=db, application_id=application_id)
    return json_response(ApplicationPublic.model_validate(row))
