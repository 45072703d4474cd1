"""Signing in under attack: backoff and lockout per user name and per address, argon2 off the loop.

Failed sign-ins are counted in `login_failures` (shared by every API worker process), keyed
`user:<name>` and `addr:<client address>`. After `FREE` failures a key is locked for 30 s, then
60 s, 120 s ... up to `MAX_LOCK_S` (15 min); a locked key is refused with 429 and Retry-After *before* any
password is checked, so guessing costs the server nothing while locked. A success clears the
user's count; failures older than `FORGET_S` are forgotten. Loopback addresses (the machine
itself, a local reverse proxy that does not forward the client's address) have no address
counter; their user names still do. Behind a proxy, uvicorn takes the client's address from
X-Forwarded-For sent by a trusted proxy (`--forwarded-allow-ips`, loopback by default).

argon2 verification (~0.1-0.3 s of CPU each) runs in a small dedicated thread pool at the lowest
CPU priority (nice 10); sign-ins beyond `QUEUE_MAX` waiting in one process are refused with 503
at once, so a burst of logins never takes the cores from the other requests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine, text

from api.auth import verify_password
from api.users import _DUMMY_HASH, UserInfo, get_user, password_record

USER_FREE = 5  # failures per user name before the backoff starts
ADDR_FREE = 20  # failures per client address before the backoff starts
FIRST_LOCK_S = 30  # the first lock, doubled with every further failure
MAX_LOCK_S = 900  # the longest lock (15 minutes)
FORGET_S = 3600  # failures older than this no longer count
QUEUE_MAX = 16  # sign-ins waiting for a password check, per process
NICE = 10  # CPU priority of the password checks (0 normal, 19 lowest): ~1/10 of a busy core

HASH_THREADS = max(1, min(2, (os.cpu_count() or 2) // 2))


def _lower_priority() -> None:
    """Password checks yield the CPU to request handling: a higher nice value for this pool's threads
    (Linux nice values are per thread; argon2's own lane threads inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except (AttributeError, OSError):  # not Linux, or not permitted: run at normal priority
        pass


_pool = ThreadPoolExecutor(
    max_workers=HASH_THREADS, thread_name_prefix="gw-argon2", initializer=_lower_priority
)
_waiting = 0


class SignInRefused(Exception):
    """Refused before checking the password: locked (429) or too busy (503); seconds to wait."""

    def __init__(self, status: int, reason: str, retry_after: int) -> None:
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


@dataclass(frozen=True)
class Keys:
    """The counters one attempt touches."""

    user: str
    addr: str

    @classmethod
    def of(cls, username: str, address: str | None) -> Keys:
        addr = "" if _loopback(address) else f"addr:{(address or '-')[:64]}"
        return cls(user=f"user:{username.lower()[:64]}", addr=addr)

    def counted(self) -> list[tuple[str, int]]:
        """(key, failures allowed before the backoff) of each counter this attempt touches."""
        out = [(self.user, USER_FREE)]
        return out + [(self.addr, ADDR_FREE)] if self.addr else out


def _loopback(address: str | None) -> bool:
    if address in (None, "", "testclient"):  # Starlette's in-process test client
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def lock_for(failures: int, free: int) -> int:
    """Seconds a key is locked after `failures` consecutive failures (0 while still free)."""
    if failures < free:
        return 0
    return min(MAX_LOCK_S, FIRST_LOCK_S * 2 ** min(failures - free, 20))


def _locked_for(engine: Engine, keys: Keys) -> float:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT max(extract(epoch FROM locked_until - now())) FROM login_failures "
                "WHERE key IN (:u, :a) AND locked_until > now()"
            ),
            {"u": keys.user, "a": keys.addr},
        ).scalar()
    return float(row or 0.0)


def _failed(engine: Engine, keys: Keys) -> None:
    with engine.begin() as conn:
        for key, free in keys.counted():
            failures = conn.execute(
                text(
                    "INSERT INTO login_failures AS f (key, failures, last_at) VALUES (:k, 1, now()) "
                    "ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN f.last_at < now() - "
                    "make_interval(secs => :forget) THEN 1 ELSE f.failures + 1 END, last_at = now() "
                    "RETURNING failures"
                ),
                {"k": key, "forget": FORGET_S},
            ).scalar_one()
            seconds = lock_for(failures, free)
            if seconds:
                conn.execute(
                    text(
                        "UPDATE login_failures SET locked_until = now() + make_interval(secs => :s) "
                        "WHERE key = :k"
                    ),
                    {"k": key, "s": seconds},
                )


def _succeeded(engine: Engine, keys: Keys) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM login_failures WHERE key = :u"), {"u": keys.user})


def _lookup(engine: Engine, username: str):
    with engine.connect() as conn:
        return password_record(conn, username)


def _load(engine: Engine, user_id: int) -> UserInfo | None:
    with engine.connect() as conn:
        return get_user(conn, user_id=user_id)


async def _verify(password_hash: str, password: str) -> bool:
    """argon2 in the bounded pool; 503 when too many are already waiting in this process."""
    global _waiting
    if _waiting >= QUEUE_MAX:
        raise SignInRefused(503, "too many sign-ins at once; try again in a moment", 1)
    _waiting += 1
    try:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_pool, verify_password, password_hash, password)
    finally:
        _waiting -= 1


async def sign_in(engine: Engine, username: str, password: str, address: str | None) -> UserInfo:
    """The active user whose password matches; SignInRefused when locked or busy, None-free:
    a wrong name, wrong password or disabled account raises PermissionError (one message)."""
    keys = Keys.of(username, address)
    wait = await asyncio.to_thread(_locked_for, engine, keys)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise SignInRefused(
            429,
            f"too many failed sign-ins for this user name or from this address; "
            f"try again in {seconds} s",
            seconds,
        )
    record = await asyncio.to_thread(_lookup, engine, username)
    # the same argon2 work for unknown names: no user-name oracle by timing
    ok = await _verify(record[1] if record else _DUMMY_HASH, password)
    if record is None or not ok or not record[2]:
        await asyncio.to_thread(_failed, engine, keys)
        raise PermissionError("wrong user name or password (or the account is disabled)")
    await asyncio.to_thread(_succeeded, engine, keys)
    user = await asyncio.to_thread(_load, engine, record[0])
    if user is None:  # deleted in between
        raise PermissionError("wrong user name or password (or the account is disabled)")
    return user
