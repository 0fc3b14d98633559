"""/users: register one, read one, list them, list one user's applications."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from streamapp.models.schemas import ApplicationsPage, UserCreate, UserPublic, UsersPage
from streamapp.services import applications as applications_service
from streamapp.services import users as users_service
from streamapp.web.api.deps import DatabaseDep, query_parameters, read_query
from streamapp.web.api.errors import ERROR_BODY, ERROR_RESPONSES, WRITE_ERRORS
from streamapp.web.api.pagination import PageQuery, page_response

router = APIRouter(prefix="/users", tags=["users"], responses=ERROR_RESPONSES)

UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=WRITE_ERRORS,
)
async def create_user(user_in: UserCreate, response: Response, db: DatabaseDep) -> UserPublic:
    """Register a user (user_name and email are unique)."""
    user = UserPublic.model_validate(await users_service.create(db=db, user_in=user_in))
    response.headers["Location"] = f"/users/{user.id}"
    return user


@router.get("", response_model=UsersPage, openapi_extra=query_parameters(PageQuery))
async def list_users(request: Request, db: DatabaseDep) -> Response:
    """List users, newest first."""
    pagination = read_query(request, PageQuery).pagination
    found = await users_service.get_all(db=db, **pagination.bounds)
    return page_response("users", found, pagination)


@router.get("/{user_id}", responses={404: ERROR_BODY})
async def get_user(user_id: UserId, db: DatabaseDep) -> UserPublic:
    """Read one user."""
    return UserPublic.model_validate(await users_service.get(db=db, user_id=user_id))


@router.get(
    "/{user_id}/applications",
    response_model=ApplicationsPage,
    responses={404: ERROR_BODY},
    openapi_extra=query_parameters(PageQuery),
)
async def list_user_applications(user_id: UserId, request: Request, db: DatabaseDep) -> Response:
    """List one user's applications, newest first."""
    pagination = read_query(request, PageQuery).pagination
    found = await applications_service.get_all(db=db, **pagination.bounds, user_id=user_id)
    return page_response("applications", found, pagination)
