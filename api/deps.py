"""Request dependencies: settings, database engine, the request's connection and transaction,
the signed-in user and role checks."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.auth import TokenClaims, TokenError, csrf_token, read_token
from api.errors import ApiError
from api.query import fetch_one, template
from api.scope import covered_by_any, intersect_scope
from api.users import TOKEN_SUBJECT, UserInfo, subject, token_subject
from gridwatch.db import read_only_async_engine
from gridwatch.settings import Settings

bearer = HTTPBearer(auto_error=False, description="Bearer token from POST /api/v1/auth/token")


def get_settings(request: Request) -> Settings:
    """The app's settings (set by create_app)."""
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    """The app's database engine."""
    return request.app.state.engine


@dataclass
class Principal:
    """The signed-in user: name, role and the regions assigned to them."""

    id: int
    username: str
    role: str
    regions: list[str] = field(default_factory=list)
    full_name: str | None = None

    @property
    def scopes(self) -> list[str] | None:
        """Regions this user may see and act in; None means everywhere.

        An admin sees everything; an installer only the assigned regions; operators and
        auditors with no assigned region work for the whole hub (a top-level centre).
        """
        if self.role == "admin":
            return None
        if self.role == "installer" or self.regions:
            return list(self.regions)
        return None

    def may_touch(self, region_code: str | None) -> bool:
        """True when region_code lies inside this user's scope."""
        scopes = self.scopes
        return scopes is None or covered_by_any(scopes, region_code)

    def visible(self, requested: str | None) -> list[str] | None:
        """Regions a read may cover: the requested region narrowed to the scope (None = all)."""
        return intersect_scope(self.scopes, requested)

    def require_region(self, region_code: str | None, what: str) -> None:
        """403 unless region_code lies inside this user's scope."""
        if not self.may_touch(region_code):
            where = ", ".join(self.regions) or "no region"
            raise ApiError(
                403,
                f"{self.role} {self.username!r} may only {what} inside {where}; "
                f"this is in region {region_code or 'none'}",
            )


SESSION_COOKIE = "gw_session"  # the pages' token: HttpOnly, SameSite=Strict
CSRF_COOKIE = "gw_csrf"  # readable by the page's script, echoed as X-CSRF-Token
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _claims(request: Request, token: str | None) -> TokenClaims:
    """The token's verified claims; 401 without one or with a bad one (no database needed)."""
    if not token:
        raise ApiError(
            401, "not authenticated: send 'Authorization: Bearer <token>' (POST /api/v1/auth/token)"
        )
    settings: Settings = request.app.state.settings
    try:
        return read_token(settings.secret_key, token)
    except TokenError as exc:
        raise ApiError(401, f"not authenticated: {exc}") from None


def _principal(claims: TokenClaims, conn: Connection) -> Principal:
    """The user the claims name, if they still exist, are active and the token not revoked."""
    return _admitted(claims, token_subject(conn, claims.user_id))


def _admitted(claims: TokenClaims, found: tuple[UserInfo, int] | None) -> Principal:
    """The signed-in user from the claims and the user they name now (token_subject); 401 unless
    that user still exists, is active and the token's version is current."""
    if found is None or not found[0].active or found[0].username != claims.username:
        raise ApiError(
            401, "not authenticated: the user of this token no longer exists or is disabled"
        )
    user, version = found
    if claims.version != version:
        raise ApiError(
            401,
            "not authenticated: this token was revoked (password changed, user disabled or "
            "signed out everywhere); sign in again",
        )
    return Principal(
        id=user.id,
        username=user.username,
        role=user.role,
        regions=user.regions,
        full_name=user.full_name,
    )


def _token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer header, else the page session cookie (which needs the CSRF header to change
    anything). Tokens in URLs are refused: they end up in logs and browser history."""
    if credentials is not None:
        return credentials.credentials
    raw_query = request.scope.get("query_string", b"")
    # parsing the query string costs every request; only a name spelt so, or %-encoded, can be it
    if (b"access_token" in raw_query or b"%" in raw_query) and (
        "access_token" in request.query_params
    ):
        raise ApiError(
            400,
            "tokens in URLs are refused (they end up in logs); send 'Authorization: Bearer "
            "<token>', or sign in the page (POST /api/v1/auth/session) to use its cookie",
        )
    token = request.cookies.get(SESSION_COOKIE)
    if token and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        expected = csrf_token(request.app.state.csrf_key, token)
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise ApiError(403, "CSRF check failed: send the X-CSRF-Token header of your session")
    return token


def current_user(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Iterator[Principal]:
    """The signed-in user from the Authorization header or the session cookie; 401 otherwise.

    The connection of the lookup stays the request's (`Db`, `DbTx`) until the route returns
    (scope "function": before the response is sent): committed then when the route took `DbTx`,
    else rolled back; rolled back when the route raises. One pool checkout per request, and one
    thread-pool hop each way for sign-in and connection together."""
    claims = _claims(request, _token(request, credentials))  # refused before any checkout
    with request.app.state.engine.connect() as conn:
        user = _principal(claims, conn)
        request.state.db, request.state.db_commit = conn, False
        try:
            yield user
            if request.state.db_commit:
                conn.commit()
        except BaseException:
            conn.rollback()
            raise


CurrentUser = Annotated[Principal, Depends(current_user, scope="function")]


async def db_connection(request: Request, _user: CurrentUser) -> Connection:
    """The signed-in request's connection (the one its sign-in check used), to read."""
    return request.state.db


async def db_transaction(request: Request, _user: CurrentUser) -> Connection:
    """The signed-in request's connection as one transaction: committed when the route returns
    (before the response is sent, so a client's next request sees it), rolled back when it
    raises."""
    request.state.db_commit = True
    return request.state.db


# Use these in routers: `conn: Db` to read, `conn: DbTx` to change rows atomically (both sign in).
Db = Annotated[Connection, Depends(db_connection)]
DbTx = Annotated[Connection, Depends(db_transaction)]


def current_user_briefly(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    """current_user on a connection of its own, back in the pool at once: for routes that wait
    on the client (uploads, streams) and hold no connection meanwhile (no Db/DbTx there)."""
    claims = _claims(request, _token(request, credentials))
    with request.app.state.engine.connect() as conn:
        return _principal(claims, conn)


def read_engine(request: Request) -> AsyncEngine:
    """The app's read-only asyncio engine (gridwatch.db.read_only_async_engine) on the API's
    database and role, made on first use in the running event loop (a pool serves one loop: an
    app served again in another loop, as by a second TestClient, gets a new one)."""
    state = request.app.state
    loop = asyncio.get_running_loop()
    if getattr(state, "read_engine_loop", None) is not loop:
        state.read_engine = read_only_async_engine(state.engine.url)
        state.read_engine_loop = loop
    return state.read_engine


async def dispose_read_engine(app: Any) -> None:
    """Close the read-only engine's connections (at shutdown)."""
    engine = getattr(app.state, "read_engine", None)
    if engine is not None and app.state.read_engine_loop is asyncio.get_running_loop():
        await engine.dispose()
    app.state.read_engine = app.state.read_engine_loop = None


async def current_reader(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> AsyncIterator[Principal]:
    """current_user for read routes that run on the event loop (no thread-pool hop): the sign-in
    check and the route share one read-only asyncio connection (`ReadDb`), given back when the
    route returns. A missing or forged token is refused before any checkout."""
    claims = _claims(request, _token(request, credentials))
    async with read_engine(request).connect() as conn:
        subject_now = await fetch_one(
            conn, template("token_subject", lambda: TOKEN_SUBJECT), {"i": claims.user_id}
        )
        user = _admitted(claims, subject(subject_now))
        request.state.read_db = conn
        yield user


Reader = Annotated[Principal, Depends(current_reader, scope="function")]


async def read_connection(request: Request, _user: Reader) -> AsyncConnection:
    """The signed-in request's read-only asyncio connection (the one its sign-in check used)."""
    return request.state.read_db


# `conn: ReadDb` in an async read route (with require(..., reads=True) for its roles): cannot write
ReadDb = Annotated[AsyncConnection, Depends(read_connection)]


def _admit(user: Principal, roles: tuple[str, ...]) -> Principal:
    if user.role != "admin" and user.role not in roles:
        raise ApiError(
            403,
            f"forbidden: this needs the role {' or '.join(roles)} (you are {user.role} {user.username!r})",
        )
    return user


def require(*roles: str, brief: bool = False, reads: bool = False) -> Callable[..., Any]:
    """A dependency that admits only the given roles (admin always); 403 with the reason.
    brief: the sign-in check does not keep a connection (current_user_briefly); reads: it signs
    in on the read-only asyncio connection of an async route (`ReadDb`). Async: a role check
    costs no thread-pool hop."""
    if reads:

        async def check_reader(user: Reader) -> Principal:
            return _admit(user, roles)

        return check_reader
    if brief:

        async def check_briefly(user: Principal = Depends(current_user_briefly)) -> Principal:
            return _admit(user, roles)

        return check_briefly

    async def check(user: CurrentUser) -> Principal:
        return _admit(user, roles)

    return check


ANY_ROLE = ("operator", "installer", "auditor", "admin")
