"""User accounts: create, find, authenticate, assign regions (tables users and user_regions)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Delete, Update, bindparam, delete, text, update

from api.auth import ROLES, hash_password, verify_password
from api.scope import CODE_RE
from api.trail import record
from gridwatch import schema

_users = schema.users


class UserError(ValueError):
    """A user operation refused, with the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class UserInfo(BaseModel):
    """A user as the API shows it (never the password hash)."""

    id: int
    username: str
    role: str
    full_name: str | None = None
    active: bool = True
    regions: list[str] = []


def _regions(conn: Connection, user_id: int) -> list[str]:
    rows = conn.execute(
        text("SELECT region_code FROM user_regions WHERE user_id = :u ORDER BY region_code"),
        {"u": user_id},
    )
    return [r[0] for r in rows]


def get_user(
    conn: Connection, username: str | None = None, user_id: int | None = None
) -> UserInfo | None:
    """A user by name or id, with assigned regions; None when there is none."""
    if user_id is not None:
        row = (
            conn.execute(
                text("SELECT id, username, role, full_name, active FROM users WHERE id = :i"),
                {"i": user_id},
            )
            .mappings()
            .first()
        )
    else:
        row = (
            conn.execute(
                text("SELECT id, username, role, full_name, active FROM users WHERE username = :n"),
                {"n": username},
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    return UserInfo(**row, regions=_regions(conn, row["id"]))


def list_users(conn: Connection) -> list[UserInfo]:
    """Every user, by name."""
    rows = conn.execute(
        text("SELECT id, username, role, full_name, active FROM users ORDER BY username")
    ).mappings()
    return [UserInfo(**r, regions=_regions(conn, r["id"])) for r in list(rows)]


def _check_regions(conn: Connection, regions: list[str]) -> None:
    for code in regions:
        if not CODE_RE.match(code):
            raise UserError("regions", f"{code!r} is not a 12-digit division code")
        found = conn.execute(text("SELECT 1 FROM regions WHERE code = :c"), {"c": code}).scalar()
        if not found:
            raise UserError("regions", f"region {code} is not loaded (import divisions first)")


def create_user(
    conn: Connection,
    username: str,
    password: str,
    role: str,
    regions: list[str] | None = None,
    full_name: str | None = None,
    actor: str = "system",
) -> UserInfo:
    """Create a user with a hashed password and assigned regions; logged in audit_log."""
    if role not in ROLES:
        raise UserError("role", f"{role!r} is not one of {', '.join(ROLES)}")
    if (
        not 2 <= len(username) <= 64
        or not username.replace("_", "").replace("-", "").replace(".", "").isalnum()
    ):
        raise UserError("username", "2-64 letters, digits, '.', '_' or '-'")
    try:
        password_hash = hash_password(password)
    except ValueError as exc:
        raise UserError("password", str(exc).split(": ", 1)[-1]) from None
    regions = sorted(set(regions or []))
    _check_regions(conn, regions)
    if role == "installer" and not regions:
        raise UserError(
            "regions", "an installer needs at least one region to work in (--region CODE)"
        )
    exists = conn.execute(text("SELECT 1 FROM users WHERE username = :n"), {"n": username}).scalar()
    if exists:
        raise UserError("username", f"{username!r} already exists")
    user_id = conn.execute(
        text(
            "INSERT INTO users (username, password_hash, role, full_name) "
            "VALUES (:n, :h, :r, :f) RETURNING id"
        ),
        {"n": username, "h": password_hash, "r": role, "f": full_name},
    ).scalar_one()
    for code in regions:
        conn.execute(
            text("INSERT INTO user_regions (user_id, region_code) VALUES (:u, :c)"),
            {"u": user_id, "c": code},
        )
    record(conn, actor, "create", "user", username, {"role": role, "regions": regions})
    return UserInfo(id=user_id, username=username, role=role, full_name=full_name, regions=regions)


def set_password(conn: Connection, username: str, password: str, actor: str = "system") -> None:
    """Replace a user's password."""
    try:
        password_hash = hash_password(password)
    except ValueError as exc:
        raise UserError("password", str(exc).split(": ", 1)[-1]) from None
    bump = _users.c.token_version + 1  # a new password revokes every token issued before it
    _one_user(
        conn, username, update(_users).values(password_hash=password_hash, token_version=bump)
    )
    record(conn, actor, "set_password", "user", username, {"tokens_revoked": True})


def _one_user(conn: Connection, username: str, stmt: Update | Delete) -> None:
    """An UPDATE or DELETE of the users table run on `username`'s row; UserError naming the
    username when there is none."""
    if not conn.execute(stmt.where(_users.c.username == username)).rowcount:
        raise UserError("username", f"no user called {username!r}")


def set_active(conn: Connection, username: str, active: bool, actor: str = "system") -> UserInfo:
    """Enable or disable a user; disabling revokes every token issued to them."""
    bump = _users.c.token_version + (0 if active else 1)  # disabling revokes every token
    _one_user(conn, username, update(_users).values(active=active, token_version=bump))
    record(conn, actor, "enable" if active else "disable", "user", username, None)
    user = get_user(conn, username=username)
    assert user is not None
    return user


def revoke_tokens(conn: Connection, username: str, actor: str = "system") -> None:
    """Sign a user out everywhere: every token issued so far stops working."""
    bump = _users.c.token_version + 1
    _one_user(conn, username, update(_users).values(token_version=bump))
    record(conn, actor, "revoke_tokens", "user", username, None)


def delete_user(conn: Connection, username: str, actor: str = "system") -> None:
    """Delete a user (regions go with it; the audit log keeps their name as actor)."""
    _one_user(conn, username, delete(_users))
    record(conn, actor, "delete", "user", username, None)


# The user a token names, with the current token version, in one query (every request)
TOKEN_SUBJECT = text(
    "SELECT u.id, u.username, u.role, u.full_name, u.active, u.token_version, "
    "coalesce(array_agg(r.region_code ORDER BY r.region_code) "
    "FILTER (WHERE r.region_code IS NOT NULL), '{}') AS regions "
    "FROM users u LEFT JOIN user_regions r ON r.user_id = u.id "
    "WHERE u.id = :i GROUP BY u.id"
).bindparams(bindparam("i"))


def subject(row: Any) -> tuple[UserInfo, int] | None:
    """(user, token version) from a TOKEN_SUBJECT row (a mapping or named tuple); None for none."""
    if row is None:
        return None
    info = dict(row._asdict() if hasattr(row, "_asdict") else row)
    version = info.pop("token_version")
    return UserInfo(**info), int(version)


def token_subject(conn: Connection, user_id: int) -> tuple[UserInfo, int] | None:
    """The user a token names, with the current token version, in one query (every request)."""
    return subject(conn.execute(TOKEN_SUBJECT, {"i": user_id}).mappings().first())


def password_record(conn: Connection, username: str) -> tuple[int, str, bool] | None:
    """(id, argon2 hash, active) of a user name, for signing in; None when there is none."""
    row = conn.execute(
        text("SELECT id, password_hash, active FROM users WHERE username = :n"), {"n": username}
    ).first()
    return None if row is None else (int(row.id), str(row.password_hash), bool(row.active))


def authenticate(conn: Connection, username: str, password: str) -> UserInfo | None:
    """The active user whose password matches, else None (same answer for unknown names)."""
    found = password_record(conn, username)
    if found is None:
        verify_password(_DUMMY_HASH, password)  # same work either way: no user-name oracle
        return None
    user_id, password_hash, active = found
    if not active or not verify_password(password_hash, password):
        return None
    return get_user(conn, user_id=user_id)


_DUMMY_HASH = hash_password("not-a-real-password")


def ensure_user(
    conn: Connection,
    username: str,
    password: str,
    role: str,
    regions: list[str] | None = None,
    full_name: str | None = None,
) -> UserInfo:
    """Create the user when missing (demo and set-up); an existing user is left as it is."""
    existing = get_user(conn, username=username)
    if existing is not None:
        return existing
    return create_user(conn, username, password, role, regions, full_name, actor="setup")
