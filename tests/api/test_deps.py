"""api/deps.py against the real database: the sign-in check and the route share one pooled
connection (one checkout per request); a route reading through `Db` commits nothing, one taking
`DbTx` commits when it returns and rolls back when it raises; an async route reading through
`ReadDb` signs in on its one read-only connection, cannot write, and sees a revocation at once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import DBAPIError

from api.deps import (
    ANY_ROLE,
    Db,
    DbTx,
    Principal,
    ReadDb,
    dispose_read_engine,
    read_engine,
    require,
)
from api.errors import ApiError, install_error_handlers

pytestmark = pytest.mark.integration

ACTOR = "test-deps"


def _log(conn, entity_id: str) -> None:
    conn.execute(
        text(
            "INSERT INTO audit_log (actor, action, entity, entity_id) "
            "VALUES (:a, 'test.deps', 'probe', :e)"
        ),
        {"a": ACTOR, "e": entity_id},
    )


@pytest.fixture(scope="module")
def probe(app, users) -> Iterator[tuple[TestClient, list[int]]]:
    """A small app on the real API's engine and keys with three routes, and a count of pool
    checkouts per request."""
    router = APIRouter()
    checkouts: list[int] = []

    @router.post("/read/{tag}")
    def read_route(tag: str, conn: Db, _u: Principal = Depends(require(*ANY_ROLE))) -> dict:
        _log(conn, tag)  # a read route that writes: never committed
        return {"ok": True}

    @router.post("/write/{tag}")
    def write_route(tag: str, conn: DbTx, _u: Principal = Depends(require(*ANY_ROLE))) -> dict:
        _log(conn, tag)
        return {"ok": True}

    @router.post("/async-read/{tag}")
    async def async_read_route(
        tag: str,
        request: Request,
        conn: ReadDb,
        _u: Principal = Depends(require(*ANY_ROLE, reads=True)),
    ) -> dict:
        counted = read_engine(request).sync_engine
        if not event.contains(counted, "checkout", count):
            event.listen(counted, "checkout", count)
            checkouts.append(1)  # this request's checkout happened before the listener
        read_only = (await conn.execute(text("SHOW transaction_read_only"))).scalar_one()
        try:
            await conn.execute(
                text(
                    "INSERT INTO audit_log (actor, action, entity, entity_id) "
                    "VALUES (:a, 'test.deps', 'probe', :e)"
                ),
                {"a": ACTOR, "e": tag},
            )
            wrote = "written"
        except DBAPIError as exc:
            wrote = type(exc.orig).__name__
        return {"read_only": read_only, "wrote": wrote}

    @router.post("/fail/{tag}")
    def fail_route(tag: str, conn: DbTx, _u: Principal = Depends(require(*ANY_ROLE))) -> dict:
        _log(conn, tag)
        raise ApiError(409, "refused after writing")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await dispose_read_engine(app)

    probe_app = FastAPI(lifespan=lifespan)
    for name in ("settings", "csrf_key"):
        setattr(probe_app.state, name, getattr(app.state, name))
    # an engine of its own on the API's URL and role: the API's engine is shared with the running
    # app's event broadcaster, whose polls would be counted as this request's checkouts
    engine = create_engine(app.state.engine.url, pool_pre_ping=True)
    probe_app.state.engine = engine
    install_error_handlers(probe_app)
    probe_app.include_router(router)

    def count(*_args) -> None:
        checkouts.append(1)

    event.listen(engine, "checkout", count)
    try:
        with TestClient(probe_app) as client:
            yield client, checkouts
    finally:
        event.remove(engine, "checkout", count)
        engine.dispose()


def _stored(engine, tag: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM audit_log WHERE actor = :a AND entity_id = :e"),
            {"a": ACTOR, "e": tag},
        ).scalar_one()


def test_one_connection_per_request_and_commit_only_for_dbtx(probe, headers, engine) -> None:
    client, checkouts = probe
    h = headers["t-operator"]
    tags = {k: f"{k}-{uuid.uuid4().hex[:8]}" for k in ("read", "write", "fail")}
    for kind, tag in tags.items():
        checkouts.clear()
        r = client.post(f"/{kind}/{tag}", headers=h)
        assert r.status_code == (409 if kind == "fail" else 200), r.text
        assert len(checkouts) == 1, f"{kind}: {len(checkouts)} checkouts"  # sign-in + route
    assert _stored(engine, tags["write"]) == 1
    assert _stored(engine, tags["read"]) == 0  # Db: rolled back when the route returned
    assert _stored(engine, tags["fail"]) == 0  # DbTx: rolled back when the route raised


def test_a_missing_or_forged_token_takes_no_connection(probe) -> None:
    client, checkouts = probe
    checkouts.clear()
    r = client.post("/write/x", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    assert client.post("/write/x").status_code == 401  # no token at all
    assert checkouts == []  # a missing or forged token costs no database connection


def test_an_async_read_route_signs_in_on_one_read_only_connection(probe, headers, engine) -> None:
    client, checkouts = probe
    h = headers["t-operator"]
    client.post("/async-read/warm-up", headers=h)  # the read engine is made on first use
    for _ in range(3):
        checkouts.clear()
        tag = f"async-{uuid.uuid4().hex[:8]}"
        r = client.post(f"/async-read/{tag}", headers=h)
        assert r.status_code == 200, r.text
        assert len(checkouts) == 1  # sign-in and route on one connection
        assert r.json() == {"read_only": "on", "wrote": "ReadOnlySqlTransaction"}
        assert _stored(engine, tag) == 0
    checkouts.clear()
    assert (
        client.post("/async-read/x", headers={"Authorization": "Bearer gw1.a.b"}).status_code == 401
    )
    assert client.post("/async-read/x").status_code == 401
    assert checkouts == []  # refused before any checkout


def test_a_revoked_token_is_refused_by_the_next_async_read(client, users, engine) -> None:
    from api.users import create_user, delete_user, revoke_tokens, set_active

    name = f"t-rev-{uuid.uuid4().hex[:6]}"
    with engine.begin() as conn:
        create_user(conn, name, "revoke-pass-1", "operator")
    try:
        r = client.post("/api/v1/auth/token", json={"username": name, "password": "revoke-pass-1"})
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for path in ("/api/v1/alarms?limit=1", "/api/v1/devices?limit=1", "/api/v1/auth/me"):
            assert client.get(path, headers=h).status_code == 200, path
        with engine.begin() as conn:  # as `gridwatch users revoke` does, from another process
            revoke_tokens(conn, name, actor=ACTOR)
        for path in ("/api/v1/alarms?limit=1", "/api/v1/devices?limit=1", "/api/v1/auth/me"):
            r = client.get(path, headers=h)
            assert r.status_code == 401 and "revoked" in r.json()["detail"], path
        r = client.post("/api/v1/auth/token", json={"username": name, "password": "revoke-pass-1"})
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert client.get("/api/v1/regions?limit=1", headers=h).status_code == 200
        with engine.begin() as conn:
            set_active(conn, name, False, actor=ACTOR)
        assert client.get("/api/v1/regions?limit=1", headers=h).status_code == 401
    finally:
        with engine.begin() as conn:
            delete_user(conn, name, actor=ACTOR)


def _terminate(engine, pid: int) -> None:
    """End a server backend and wait until the server no longer lists it."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        while conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
        ).scalar_one():
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))


def test_an_idle_read_connection_is_pinged_and_a_busy_one_is_not(engine, monkeypatch) -> None:
    """The read engine pings a pooled connection only when it was idle (IDLE_PING_S): a dead idle
    one is replaced before the read, with no error; one just back from a request is handed out
    as it is (no round trip), so a server-side end shows as one failed read, then it is replaced."""
    import asyncio

    from gridwatch import db

    async def pid_of(read) -> int:
        async with read.connect() as conn:
            return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()

    async def scenario() -> tuple[int, int, str, int]:
        read = db.read_only_async_engine(engine.url)
        try:
            monkeypatch.setattr(db, "IDLE_PING_S", 0.0)  # every pooled connection counts as idle
            first = await pid_of(read)
            _terminate(engine, first)
            replaced = await pid_of(read)  # pinged, found dead, replaced: no error
            monkeypatch.setattr(db, "IDLE_PING_S", 3600.0)  # every one counts as just back
            _terminate(engine, replaced)
            try:
                await pid_of(read)
                failed = "no error"
            except DBAPIError as exc:  # the server ended it: a disconnect, that connection dropped
                failed = "invalidated" if exc.connection_invalidated else str(exc)
            return first, replaced, failed, await pid_of(read)
        finally:
            await read.dispose()

    first, replaced, failed, after = asyncio.run(scenario())
    assert replaced != first
    assert failed == "invalidated"  # not pinged: the read itself found the connection gone
    assert after not in (first, replaced)


def test_bursts_of_reads_reuse_the_pool_instead_of_opening_connections(engine) -> None:
    """More reads at once than the pool holds wait for a pooled connection: bursts never open
    connections beyond it. (With overflow, every burst opened and closed its own: a new backend
    and a scram-sha-256 exchange each, ~1 in 22 reads of the API's bench before.)"""
    import asyncio

    from gridwatch import db

    async def burst(read, n: int) -> set[int]:
        async def one() -> int:
            async with read.connect() as conn:
                sql = text("SELECT pg_backend_pid() FROM pg_sleep(0.02)")
                return (await conn.execute(sql)).scalar_one()

        return set(await asyncio.gather(*(one() for _ in range(n))))

    async def scenario() -> tuple[set[int], int]:
        read = db.read_only_async_engine(engine.url)
        try:
            seen: set[int] = set()
            for _ in range(3):
                seen |= await burst(read, 60)
            return seen, read.sync_engine.pool.size()
        finally:
            await read.dispose()

    seen, size = asyncio.run(scenario())
    assert len(seen) <= size
