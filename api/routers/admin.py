"""Admin: users and the audit log (who changed what, when)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.deps import Db, DbTx, Principal, require
from api.errors import COMMON_RESPONSES, ApiError
from api.query import all_of
from api.types import Rfc3339
from api.users import (
    UserError,
    UserInfo,
    create_user,
    delete_user,
    get_user,
    list_users,
    revoke_tokens,
    set_active,
    set_password,
)
from gridwatch import schema

router = APIRouter(tags=["admin"], responses=COMMON_RESPONSES)


class UserIn(BaseModel):
    """A new user."""

    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    password: str = Field(min_length=8, max_length=256)
    role: str = Field(pattern=r"^(operator|installer|auditor|admin)$")
    regions: list[Annotated[str, Field(pattern=r"^[0-9]{12}$")]] = Field(
        default_factory=list,
        max_length=200,
        description="12-digit division codes the user works in",
    )
    full_name: str | None = Field(default=None, max_length=200)


class UserChange(BaseModel):
    """What an admin changes about a user; disabling or a new password revokes their tokens."""

    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=256)
    revoke_tokens: bool = Field(False, description="Sign the user out everywhere")


USERNAME = Path(..., min_length=2, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")


class AuditEntry(BaseModel):
    """One audit_log row."""

    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str | None = None
    detail: Any = None


class AuditPage(BaseModel):
    """A page of the audit log, newest first."""

    items: list[AuditEntry]
    next_before_id: int | None = Field(
        None, description="Pass as before_id to read the next (older) page; null at the end."
    )


@router.get("/users", response_model=list[UserInfo], summary="List users")
def users(conn: Db, _user: Principal = Depends(require("admin"))) -> list[UserInfo]:
    """Every user with role and regions (admin only)."""
    return list_users(conn)


@router.post(
    "/users",
    response_model=UserInfo,
    status_code=201,
    summary="Create a user",
    responses={409: {"description": "user name taken"}},
)
def add_user(body: UserIn, conn: DbTx, user: Principal = Depends(require("admin"))) -> UserInfo:
    """Create a user (admin only); installers need at least one region."""
    try:
        return create_user(
            conn,
            body.username,
            body.password,
            body.role,
            body.regions,
            body.full_name,
            actor=user.username,
        )
    except UserError as exc:
        if "already exists" in exc.reason:
            raise ApiError(409, str(exc)) from None
        raise ApiError(422, exc.reason, exc.field) from None


def _not_self(user: Principal, username: str, what: str) -> None:
    if username == user.username:
        raise ApiError(409, f"you cannot {what} your own account (another admin can)")


@router.patch(
    "/users/{username}",
    response_model=UserInfo,
    summary="Enable, disable, set a password, revoke tokens",
    responses={404: {"description": "no such user"}, 409: {"description": "your own account"}},
)
def change_user(
    body: UserChange,
    conn: DbTx,
    username: str = USERNAME,
    user: Principal = Depends(require("admin")),
) -> UserInfo:
    """Disabling a user, giving a new password or `revoke_tokens` makes every token issued to
    them stop working at once (admin only)."""
    if body.active is False:
        _not_self(user, username, "disable")
    try:
        if get_user(conn, username=username) is None:
            raise ApiError(404, f"no user called {username!r}")
        if body.password is not None:
            set_password(conn, username, body.password, actor=user.username)
        if body.active is not None:
            set_active(conn, username, body.active, actor=user.username)
        if body.revoke_tokens:
            revoke_tokens(conn, username, actor=user.username)
        info = get_user(conn, username=username)
    except UserError as exc:
        raise ApiError(422, exc.reason, exc.field) from None
    assert info is not None
    return info


@router.delete(
    "/users/{username}",
    status_code=204,
    summary="Delete a user",
    responses={404: {"description": "no such user"}, 409: {"description": "your own account"}},
)
def remove_user(
    conn: DbTx, username: str = USERNAME, user: Principal = Depends(require("admin"))
) -> Response:
    """Delete a user: their tokens stop working at once; the audit log keeps their name."""
    _not_self(user, username, "delete")
    try:
        delete_user(conn, username, actor=user.username)
    except UserError as exc:
        raise ApiError(404, str(exc)) from None
    return Response(status_code=204)


@router.get("/audit-log", response_model=AuditPage, summary="Read the audit log")
def audit_log(
    conn: Db,
    actor: str | None = Query(None, max_length=64),
    entity: str | None = Query(None, max_length=64),
    entity_id: str | None = Query(None, max_length=64),
    since: Rfc3339 | None = Query(
        None, description="Only entries at or after this time (RFC 3339)."
    ),
    before_id: int | None = Query(None, ge=1, le=2**62, description="Cursor from next_before_id."),
    limit: int = Query(100, ge=1, le=1000),
    _user: Principal = Depends(require("admin")),
) -> AuditPage:
    """Who changed what and when, newest first, with a cursor for older pages (admin only)."""
    log = schema.audit_log
    stmt = (
        select(
            log.c.id,
            log.c.at,
            log.c.actor,
            log.c.action,
            log.c.entity,
            log.c.entity_id,
            log.c.detail,
        )
        .where(
            all_of(
                log.c.actor == actor if actor is not None else None,
                log.c.entity == entity if entity is not None else None,
                log.c.entity_id == entity_id if entity_id is not None else None,
                log.c.at >= since if since is not None else None,
                log.c.id < before_id if before_id is not None else None,
            )
        )
        .order_by(log.c.id.desc())
        .limit(limit + 1)
    )
    rows = conn.execute(stmt).mappings().all()
    items = [AuditEntry(**r) for r in rows[:limit]]
    return AuditPage(items=items, next_before_id=items[-1].id if len(rows) > limit else None)
