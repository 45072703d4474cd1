"""Request dependencies: settings, database engine, the signed-in user and role checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from api.auth import TokenError, read_token
from api.errors import ApiError
from api.scope import covered_by_any, intersect_scope
from api.users import get_user
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


def _principal(request: Request, token: str | None) -> Principal:
    if not token:
        raise ApiError(
            401, "not authenticated: send 'Authorization: Bearer <token>' (POST /api/v1/auth/token)"
        )
    settings: Settings = request.app.state.settings
    try:
        claims = read_token(settings.secret_key, token)
    except TokenError as exc:
        raise ApiError(401, f"not authenticated: {exc}") from None
    with request.app.state.engine.connect() as conn:
        user = get_user(conn, user_id=claims.user_id)
    if user is None or not user.active or user.username != claims.username:
        raise ApiError(
            401, "not authenticated: the user of this token no longer exists or is disabled"
        )
    return Principal(id=user.id, username=user.username, role=user.role, regions=user.regions)


def current_user(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    """The signed-in user from the Authorization header; 401 otherwise."""
    return _principal(request, credentials.credentials if credentials else None)


def current_user_or_query(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    access_token: str | None = Query(
        None,
        max_length=2048,
        description="Token for clients that cannot set headers (EventSource, map tiles).",
    ),
) -> Principal:
    """The signed-in user from the header or an access_token query parameter."""
    token = credentials.credentials if credentials else access_token
    return _principal(request, token)


def require(*roles: str, query_token: bool = False) -> Callable[..., Principal]:
    """A dependency that admits only the given roles (admin always); 403 with the reason."""
    base = current_user_or_query if query_token else current_user

    def check(user: Principal = Depends(base)) -> Principal:
        if user.role != "admin" and user.role not in roles:
            raise ApiError(
                403,
                f"forbidden: this needs the role {' or '.join(roles)} (you are {user.role} {user.username!r})",
            )
        return user

    return check


ANY_ROLE = ("operator", "installer", "auditor", "admin")
