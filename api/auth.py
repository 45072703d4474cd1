"""Passwords (argon2id) and bearer tokens (HMAC-SHA256 signed with settings.secret_key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TOKEN_PREFIX = "gw1"
DEFAULT_TTL_S = 12 * 3600  # one shift in a command centre
ROLES = ("operator", "installer", "auditor", "admin")

_hasher = PasswordHasher()


class TokenError(ValueError):
    """A bearer token that is malformed, forged or expired; the message says which."""


def hash_password(password: str) -> str:
    """An argon2id hash of the password (salted, with argon2-cffi's current parameters)."""
    if len(password) < 8:
        raise ValueError("password: must be at least 8 characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches the stored argon2 hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says: who, which role, until when (epoch seconds), and the user's
    token version when it was issued (a password change or disabling increments it: revoked)."""

    user_id: int
    username: str
    role: str
    expires: int
    version: int = 0
    issued: int = 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, body: str) -> str:
    mac = hmac.new(secret.encode(), f"{TOKEN_PREFIX}.{body}".encode(), hashlib.sha256).digest()
    return _b64(mac)


def issue_token(
    secret: str,
    user_id: int,
    username: str,
    role: str,
    ttl_s: int = DEFAULT_TTL_S,
    version: int = 0,
) -> tuple[str, int]:
    """A signed bearer token and its expiry (epoch seconds); `version` is users.token_version."""
    now = int(time.time())
    expires = now + ttl_s
    claims = {"uid": user_id, "sub": username, "role": role, "exp": expires}
    claims |= {"ver": version, "iat": now}
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{TOKEN_PREFIX}.{body}.{_sign(secret, body)}", expires


def read_token(secret: str, token: str, now: float | None = None) -> TokenClaims:
    """Verify signature and expiry; TokenError says why a token is refused."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise TokenError("malformed token (expected gw1.<claims>.<signature>)")
    _, body, signature = parts
    if not hmac.compare_digest(_sign(secret, body), signature):
        raise TokenError("token signature does not match (forged, or signed with another key)")
    try:
        claims = json.loads(_unb64(body))
        result = TokenClaims(
            user_id=int(claims["uid"]),
            username=str(claims["sub"]),
            role=str(claims["role"]),
            expires=int(claims["exp"]),
            version=int(claims.get("ver", 0)),
            issued=int(claims.get("iat", 0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError("token claims are unreadable") from exc
    if result.expires < (now if now is not None else time.time()):
        raise TokenError("token expired; sign in again")
    return result


def csrf_token(secret: str, session_token: str) -> str:
    """The CSRF token that goes with a session cookie: derived from it, so nothing is stored."""
    mac = hmac.new(secret.encode(), f"csrf.{session_token}".encode(), hashlib.sha256).digest()
    return _b64(mac)
