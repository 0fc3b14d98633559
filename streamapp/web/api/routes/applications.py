"""/applications: file one, read one, list them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from streamapp.metrics import APPLICATIONS_CREATED
from streamapp.models.schemas import (
    ApplicationCreate,
    ApplicationCreatedResponse,
    ApplicationPublic,
    ApplicationsPage,
    UserName,
)
from streamapp.services import applications as applications_service
from streamapp.services.applications import Created, Replayed
from streamapp.stream.topics import NEW_APPLICATIONS
from streamapp.web.api.deps import (
    DatabaseDep,
    IdempotencyKey,
    OutboxDep,
    Pagination,
    PaginationDep,
)
from streamapp.web.api.errors import ERROR_BODY, ERROR_RESPONSES

router = APIRouter(prefix="/applications", tags=["applications"], responses=ERROR_RESPONSES)

ApplicationId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: ERROR_BODY})
async def create_application(
    application_in: ApplicationCreate,
    response: Response,
    db: DatabaseDep,
    outbox: OutboxDep,
    idempotency_key: IdempotencyKey = None,
) -> ApplicationCreatedResponse:
    """File an application: store it and publish it to `new_applications`."""
    result = await applications_service.create(
        db=db,
        application_in=application_in,
        topic=NEW_APPLICATIONS,
        idempotency_key=idempotency_key,
    )
    match result:
        case Created(event=event):
            APPLICATIONS_CREATED.inc()
            outbox.publish_soon(event)
        case Replayed():
            response.headers["Idempotent-Replayed"] = "true"
    application = ApplicationPublic.model_validate(result.application)
    response.headers["Location"] = f"/applications/{application.id}"
    return ApplicationCreatedResponse(id=application.id, application=application)


@router.get("")
async def list_applications(
    db: DatabaseDep,
    pagination: PaginationDep,
    user_name: Annotated[UserName | None, Query(description="Only this user's.")] = None,
) -> ApplicationsPage:
    """List applications, newest first, optionally of one user."""
    rows, total = await applications_service.get_all(
        db=db, page=pagination.page, size=pagination.size, user_name=user_name
    )
    return applications_page(rows, total, pagination)


def applications_page(
    rows: list[dict[str, Any]], total: int, pagination: Pagination
) -> ApplicationsPage:
    """Build one page of the applications listing."""
    applications = [ApplicationPublic.model_validate(row) for row in rows]
    return ApplicationsPage(applications=applications, **pagination.envelope(total))


@router.get("/{application_id}", responses={404: ERROR_BODY})
async def get_application(application_id: ApplicationId, db: DatabaseDep) -> ApplicationPublic:
    """Read one application."""
    row = await applications_service.get(db=db, application_id=application_id)
    return ApplicationPublic.model_validate(row)
