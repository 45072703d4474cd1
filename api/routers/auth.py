"""Signing in: exchange a user name and password for a bearer token; who am I."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api.auth import issue_token
from api.deps import Principal, current_user
from api.errors import ApiError, ErrorOut, ValidationErrorOut
from api.users import UserInfo, authenticate, get_user

router = APIRouter(prefix="/auth", tags=["auth"])


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


@router.post(
    "/token",
    response_model=TokenOut,
    responses={401: {"model": ErrorOut}, 422: {"model": ValidationErrorOut}},
    summary="Sign in",
)
def sign_in(body: Credentials, request: Request) -> TokenOut:
    """Check the password (argon2) and return a signed bearer token valid for one shift (12 h)."""
    with request.app.state.engine.connect() as conn:
        user = authenticate(conn, body.username, body.password)
    if user is None:
        raise ApiError(401, "wrong user name or password (or the account is disabled)")
    token, expires = issue_token(
        request.app.state.settings.secret_key, user.id, user.username, user.role
    )
    return TokenOut(access_token=token, expires_at=datetime.fromtimestamp(expires, UTC), user=user)


@router.get(
    "/me", response_model=UserInfo, responses={401: {"model": ErrorOut}}, summary="Who am I"
)
def me(request: Request, user: Principal = Depends(current_user)) -> UserInfo:
    """The signed-in user with role and assigned regions."""
    with request.app.state.engine.connect() as conn:
        info = get_user(conn, user_id=user.id)
    if info is None:
        raise ApiError(401, "not authenticated: the user no longer exists")
    return info
