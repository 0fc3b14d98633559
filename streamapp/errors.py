"""Domain errors raised by the services; `streamapp.web.errors` turns them into HTTP answers."""

from __future__ import annotations

APPLICATION_NOT_FOUND = "Application not found"
USER_NOT_FOUND = "User not found"
IDEMPOTENCY_KEY_REUSED = "Idempotency-Key was already used with a different request body"
DATABASE_UNAVAILABLE = "The database is unavailable; try again shortly"
API_KEY_REQUIRED = "A valid X-API-Key header is required"
API_STOPPING = "This API process is stopping; send requests to another one"
USER_FIELD_TAKEN = "A user with this {field} already exists"
API_OVERLOADED = "The service is busy; try again shortly"
REQUEST_TIMED_OUT = (
    "The service could not answer within {seconds:g} s; try again shortly (a POST may have "
    "been stored: retry it with the same Idempotency-Key)"
)


class DomainError(Exception):
    """Base of the errors a client can cause or see."""

    message: str = "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class EntityDoesNotExist(DomainError):
    """The addressed row is not there."""


class EntityAlreadyExists(DomainError):
    """A unique field is already taken; `field` names it."""

    def __init__(self, field: str) -> None:
        super().__init__(USER_FIELD_TAKEN.format(field=field))
        self.field = field


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key came with another body."""

    message = IDEMPOTENCY_KEY_REUSED


class ApiStopping(DomainError):
    """The process got SIGTERM and drains: it serves, but should get no new work."""

    message = API_STOPPING


class Overloaded(DomainError):
    """The API is at capacity: no turn within API_QUEUE_TIMEOUT, or no database connection
    free within DB_POOL_TIMEOUT. Nothing was done: retrying is safe."""

    message = API_OVERLOADED


class DatabaseUnavailable(DomainError):
    """PostgreSQL cannot be reached or is shutting down."""

    message = DATABASE_UNAVAILABLE
