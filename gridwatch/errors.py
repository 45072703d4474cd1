"""Domain errors: one base class, the field and a readable reason; the API maps them to HTTP."""

from __future__ import annotations


class DomainError(ValueError):
    """Input the domain refuses: which field (if one) and why, in words a person can act on.

    `status` is how an HTTP answer reads it (api/errors.py maps every DomainError with it):
    422 invalid input, 404 unknown thing, 409 conflict with the stored state. A ValueError, so
    callers that caught ValueError before keep working.
    """

    status = 422

    def __init__(self, field: str | None, reason: str, *, status: int | None = None) -> None:
        self.field = field
        self.reason = reason
        if status is not None:
            self.status = status
        super().__init__(f"{field}: {reason}" if field else reason)


class NotFound(DomainError):
    """The thing named does not exist (404)."""

    status = 404


class Conflict(DomainError):
    """The request contradicts what is stored (409): already registered, already retired."""

    status = 409
