"""Error answers: 401/403/404/409 with a reason, 422 with the field and the reason."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridwatch.errors import DomainError


class FieldError(BaseModel):
    """One invalid field: where (loc / field), what is wrong (msg / reason)."""

    loc: list[str | int]
    msg: str
    type: str
    field: str
    reason: str


class ValidationErrorOut(BaseModel):
    """A 422 answer: every invalid field with its reason."""

    detail: list[FieldError]
    code: str | None = Field(None, description="Stable error code", examples=["invalid_input"])


class ErrorOut(BaseModel):
    """A 4xx answer with a readable reason and a stable code the pages translate."""

    detail: str
    code: str | None = Field(
        None, description="Stable error code", examples=["alarm_bad_transition"]
    )


# the code of an error that names none: by HTTP status
STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    503: "unavailable",
}


def error_code(status: int) -> str:
    """The stable code for an HTTP status (error for one we do not name)."""
    return STATUS_CODES.get(status, "error")


class ApiError(Exception):
    """An error the API answers with a status and a reason (and for 422, the field)."""

    def __init__(
        self,
        status: int,
        reason: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.field = field
        self.headers = headers
        self.code = code or error_code(status)  # stable: the pages translate it
        super().__init__(reason)


def field_error(field: str, reason: str, kind: str = "value_error") -> dict[str, Any]:
    """One entry of a 422 detail list."""
    loc: list[str | int] = [p for p in field.split(".") if p]
    return {"loc": loc, "msg": reason, "type": kind, "field": field, "reason": reason}


def unprocessable(field: str, reason: str) -> ApiError:
    """A 422 ApiError naming the field."""
    return ApiError(422, reason, field)


def domain_error(exc: DomainError) -> ApiError:
    """The answer to a domain refusal: 422 naming the field, else its status with the reason."""
    if exc.status == 422:
        return unprocessable(exc.field or "request", exc.reason)
    return ApiError(exc.status, str(exc))


COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "not signed in (missing, forged or expired token)"},
    403: {"model": ErrorOut, "description": "signed in, but the role or region forbids this"},
    422: {"model": ValidationErrorOut, "description": "invalid input: the field and the reason"},
}


def _loc_field(loc: tuple | list) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:] or parts
    return ".".join(parts) or "request"


class NulGuard:
    """Refuse query parameters holding NUL characters (PostgreSQL text cannot store them): 422."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and b"%00" in scope.get("query_string", b"").lower():
            for key, value in parse_qsl(
                scope["query_string"].decode("latin-1"), keep_blank_values=True
            ):
                if "\x00" in key or "\x00" in value:
                    body = {
                        "detail": [
                            field_error(
                                key.replace("\x00", "") or "query",
                                "must not contain NUL characters",
                            )
                        ]
                    }
                    response = JSONResponse(status_code=422, content=body)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document lists for this path (Starlette's 405 names only one route's)."""
    table = getattr(request.app.state, "allowed_methods", None)
    if table is None:
        table = []
        for path, item in request.app.openapi().get("paths", {}).items():
            pattern = re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$")
            table.append((pattern, sorted(m.upper() for m in item if m in _HTTP_METHODS)))
        request.app.state.allowed_methods = table
    methods: set[str] = set()
    for pattern, allowed in table:
        if pattern.match(request.url.path):
            methods |= set(allowed)
    return sorted(methods)


_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error its field and reason."""
    app.add_middleware(NulGuard)

    @app.exception_handler(OperationalError)
    async def _db_down(_request: Request, exc: OperationalError) -> JSONResponse:
        # the database is restarting or unreachable: say so, and when to try again
        return JSONResponse(
            status_code=503,
            content={
                "detail": "the database is not reachable right now; try again in a few seconds",
                "code": "database_unavailable",
            },
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, exc: DataError) -> JSONResponse:
        # the database refused a value the validators let through (NUL in a body string, ...)
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
        return JSONResponse(
            status_code=422,
            content={
                "detail": [field_error("request", f"invalid value: {reason}")],
                "code": "invalid_input",
            },
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            reason = str(err.get("msg", "invalid"))
            detail.append(
                {
                    "loc": [p if isinstance(p, int) else str(p) for p in loc],
                    "msg": reason,
                    "type": str(err.get("type", "value_error")),
                    "field": _loc_field(loc),
                    "reason": reason,
                }
            )
        return JSONResponse(status_code=422, content={"detail": detail, "code": "invalid_input"})

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        if exc.status == 422:
            return JSONResponse(
                status_code=422,
                content={
                    "detail": [field_error(exc.field or "request", exc.reason)],
                    "code": exc.code,
                },
            )
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        headers |= exc.headers or {}
        return JSONResponse(
            status_code=exc.status,
            content={"detail": exc.reason, "code": exc.code},
            headers=headers,
        )

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return await _api_error(request, domain_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        allowed = _allowed_methods(request) if exc.status_code == 405 else []
        if allowed:
            return JSONResponse(
                status_code=405,
                content={
                    "detail": f"method {request.method} is not allowed here (allowed: {', '.join(allowed)})",
                    "code": "method_not_allowed",
                },
                headers={"Allow": ", ".join(allowed)},
            )
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            reason = "the request body is not valid JSON (UTF-8)"
            return JSONResponse(
                status_code=422,
                content={
                    "detail": [field_error("body", reason, "json_invalid")],
                    "code": "invalid_json",
                },
            )
        return JSONResponse(
            status_code=exc.status_code,
            content={"detail": str(exc.detail), "code": error_code(exc.status_code)},
            headers=getattr(exc, "headers", None),
        )
