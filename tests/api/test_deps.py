"""api/deps.py against the real database: the sign-in check and the route share one pooled
connection (one checkout per request); a route reading through `Db` commits nothing, one taking
`DbTx` commits when it returns and rolls back when it raises."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text

from api.deps import ANY_ROLE, Db, DbTx, Principal, require
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

    @router.post("/read/{tag}")
    def read_route(tag: str, conn: Db, _u: Principal = Depends(require(*ANY_ROLE))) -> dict:
        _log(conn, tag)  # a read route that writes: never committed
        return {"ok": True}

    @router.post("/write/{tag}")
    def write_route(tag: str, conn: DbTx, _u: Principal = Depends(require(*ANY_ROLE))) -> dict:
        _log(conn, tag)
        return {"ok": True}

    @router.post("/fail/{tag}")
    def fail_route(tag: str, conn: DbTx, _u: Principal = Depends(require(*ANY_ROLE))) -> dict:
        _log(conn, tag)
        raise ApiError(409, "refused after writing")

    probe_app = FastAPI()
    for name in ("settings", "csrf_key"):
        setattr(probe_app.state, name, getattr(app.state, name))
    # an engine of its own on the API's URL and role: the API's engine is shared with the running
    # app's event broadcaster, whose polls would be counted as this request's checkouts
    engine = create_engine(app.state.engine.url, pool_pre_ping=True)
    probe_app.state.engine = engine
    install_error_handlers(probe_app)
    probe_app.include_router(router)
    checkouts: list[int] = []

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
