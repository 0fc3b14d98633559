"""/users: register one, read one, list them, list one user's applications."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from streamapp.models.schemas import ApplicationsPage, UserCreate, UserPublic, UsersPage
from streamapp.services import applications as applications_service
from streamapp.services import users as users_service
from streamapp.web.api.deps import DatabaseDep, PaginationDep
from streamapp.web.api.errors import ERROR_BODY, ERROR_RESPONSES
from streamapp.web.api.routes.applications import applications_page

router = APIRouter(prefix="/users", tags=["users"], responses=ERROR_RESPONSES)

UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: ERROR_BODY})
async def create_user(user_in: UserCreate, response: Response, db: DatabaseDep) -> UserPublic:
    """Register a user (user_name and email are unique)."""
    user = UserPublic.model_validate(await users_service.create(db=db, user_in=user_in))
    response.headers["Location"] = f"/users/{user.id}"
    return user


@router.get("")
async def list_users(db: DatabaseDep, pagination: PaginationDep) -> UsersPage:
    """List users, newest first."""
    rows, total = await users_service.get_all(db=db, page=pagination.page, size=pagination.size)
    users = [UserPublic.model_validate(row) for row in rows]
    return UsersPage(users=users, **pagination.envelope(total))


@router.get("/{user_id}", responses={404: ERROR_BODY})
async def get_user(user_id: UserId, db: DatabaseDep) -> UserPublic:
    """Read one user."""
    return UserPublic.model_validate(await users_service.get(db=db, user_id=user_id))


@router.get("/{user_id}/applications", responses={404: ERROR_BODY})
async def list_user_applications(
    user_id: UserId, db: DatabaseDep, pagination: PaginationDep
) -> ApplicationsPage:
    """List one user's applications, newest first."""
    await users_service.get(db=db, user_id=user_id)
    rows, total = await applications_service.get_all(
        db=db, page=pagination.page, size=pagination.size, user_id=user_id
    )
    return applications_page(rows, total, pagination)
