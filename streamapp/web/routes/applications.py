"""/applications: file one, read one, list them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from streamapp.metrics import APPLICATIONS_CREATED
from streamapp.models.records import NEW_APPLICATIONS_TOPIC
from streamapp.models.schemas import (
    ApplicationCreate,
    ApplicationCreated,
    ApplicationPublic,
    ApplicationsPage,
    UserName,
)
from streamapp.services import applications as applications_service
from streamapp.web.deps import (
    DatabaseDep,
    IdempotencyKey,
    Pagination,
    PaginationDep,
    PublisherDep,
)
from streamapp.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/applications", tags=["applications"], responses=ERROR_RESPONSES)

ApplicationId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApplicationCreated,
    responses={409: ERROR_RESPONSES[422]},
)
async def create_application(
    application_in: ApplicationCreate,
    response: Response,
    db: DatabaseDep,
    publisher: PublisherDep,
    idempotency_key: IdempotencyKey = None,
) -> ApplicationCreated:
    """File an application: store it and publish it to `new_applications`."""
    created = await applications_service.create(
        db=db,
        application_in=application_in,
        topic=NEW_APPLICATIONS_TOPIC,
        idempotency_key=idempotency_key,
    )
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        APPLICATIONS_CREATED.inc()
        assert created.outbox_id is not None
        assert created.event is not None
        publisher.publish_soon(created.outbox_id, created.event)
    application = ApplicationPublic.model_validate(created.application)
    response.headers["Location"] = f"/applications/{application.id}"
    return ApplicationCreated(id=application.id, application=application)


@router.get("", response_model=ApplicationsPage)
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
    return ApplicationsPage(
        applications=[ApplicationPublic.model_validate(row) for row in rows],
        page=pagination.page,
        size=pagination.size,
        total=total,
    )


@router.get(
    "/{application_id}", response_model=ApplicationPublic, responses={404: ERROR_RESPONSES[422]}
)
async def get_application(application_id: ApplicationId, db: DatabaseDep) -> ApplicationPublic:
    """Read one application."""
    row = await applications_service.get(db=db, application_id=application_id)
    return ApplicationPublic.model_validate(row)
