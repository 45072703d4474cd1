"""Signing in: a bearer token for API clients, an HttpOnly session cookie for the pages; who am I."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api.auth import DEFAULT_TTL_S, csrf_token, issue_token
from api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Principal,
    Reader,
    current_user_briefly,
    get_engine,
)
from api.errors import ApiError, ErrorOut, ValidationErrorOut
from api.signin import SignInRefused, sign_in
from api.users import UserError, UserInfo, set_password, token_subject

router = APIRouter(prefix="/auth", tags=["auth"])

REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "wrong user name or password, or disabled"},
    422: {"model": ValidationErrorOut},
    429: {"model": ErrorOut, "description": "too many failed sign-ins: wait Retry-After seconds"},
    503: {"model": ErrorOut, "description": "too many sign-ins at once: try again"},
}


class Credentials(BaseModel):
    """User name and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenOut(BaseModel):
    """A bearer token, when it expires, and who it is for."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: UserInfo


class SessionOut(BaseModel):
    """A page session: the token is in an HttpOnly cookie; send csrf_token as X-CSRF-Token."""

    csrf_token: str
    expires_at: datetime
    user: UserInfo


class PasswordChange(BaseModel):
    """The current password and the new one."""

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=8, max_length=256)


async def _checked(request: Request, body: Credentials) -> tuple[UserInfo, str, int]:
    """The user, a fresh token and its expiry; 401/429/503 with the reason otherwise."""
    engine = get_engine(request)
    address = request.client.host if request.client else None
    try:
        user = await sign_in(engine, body.username, body.password, address)
    except SignInRefused as exc:
        raise ApiError(
            exc.status, exc.reason, headers={"Retry-After": str(exc.retry_after)}
        ) from None
    except PermissionError as exc:
        raise ApiError(401, str(exc)) from None
    with engine.connect() as conn:
        subject = token_subject(conn, user.id)
    version = subject[1] if subject else 0
    token, expires = issue_token(
        request.app.state.settings.secret_key, user.id, user.username, user.role, version=version
    )
    return user, token, expires


@router.post("/token", response_model=TokenOut, responses=REFUSALS, summary="Sign in (API)")
async def sign_in_token(body: Credentials, request: Request) -> TokenOut:
    """Check the password (argon2) and return a signed bearer token valid for one shift (12 h).
    Send it as `Authorization: Bearer <token>`; never put it in a URL."""
    user, token, expires = await _checked(request, body)
    return TokenOut(access_token=token, expires_at=datetime.fromtimestamp(expires, UTC), user=user)


@router.post("/session", response_model=SessionOut, responses=REFUSALS, summary="Sign in (pages)")
async def sign_in_session(body: Credentials, request: Request, response: Response) -> SessionOut:
    """Sign a browser in: the token goes into an HttpOnly, SameSite=Strict cookie that scripts
    cannot read; requests that change something must carry `X-CSRF-Token: <csrf_token>`."""
    user, token, expires = await _checked(request, body)
    csrf = csrf_token(request.app.state.csrf_key, token)
    secure = request.url.scheme == "https"
    for name, value, http_only in ((SESSION_COOKIE, token, True), (CSRF_COOKIE, csrf, False)):
        response.set_cookie(
            name,
            value,
            max_age=DEFAULT_TTL_S,
            path="/",
            httponly=http_only,
            samesite="strict",
            secure=secure,
        )
    return SessionOut(csrf_token=csrf, expires_at=datetime.fromtimestamp(expires, UTC), user=user)


@router.delete("/session", status_code=204, summary="Sign out (pages)")
def sign_out_session(response: Response) -> Response:
    """Forget the page session's cookies."""
    response.status_code = 204
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", samesite="strict")
    return response


@router.get(
    "/me", response_model=UserInfo, responses={401: {"model": ErrorOut}}, summary="Who am I"
)
async def me(user: Reader) -> UserInfo:
    """The signed-in user with role and assigned regions."""
    return UserInfo(
        id=user.id,
        username=user.username,
        role=user.role,
        full_name=user.full_name,
        active=True,  # the sign-in check refuses a disabled user
        regions=user.regions,
    )


@router.post(
    "/password",
    status_code=204,
    responses={**REFUSALS, 403: {"model": ErrorOut}},
    summary="Change my password",
)
async def change_password(
    body: PasswordChange,
    request: Request,
    user: Principal = Depends(current_user_briefly),  # holds no connection meanwhile
) -> Response:
    """Change your own password (the current one is checked, with the same lockout as signing
    in); every token issued before, this one included, stops working: sign in again."""
    await _checked(request, Credentials(username=user.username, password=body.current_password))
    try:
        with get_engine(request).begin() as conn:
            set_password(conn, user.username, body.new_password, actor=user.username)
    except UserError as exc:
        raise ApiError(422, exc.reason, "new_password") from None
    return Response(status_code=204)
