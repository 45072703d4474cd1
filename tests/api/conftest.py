"""API test fixtures: the app on the test database, fixture places, users and their tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.api.fixtures import places, users  # noqa: F401 - shared fixtures


@pytest.fixture(scope="session")
def app(db_url, mqtt_broker):
    """The API on the test database and broker."""
    from api.app import create_app
    from gridwatch.settings import get_settings

    return create_app(get_settings())


@pytest.fixture(scope="session")
def client(app, users) -> Iterator[TestClient]:
    """An in-process client (lifespan started: the event broadcaster runs)."""
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def headers(client, users) -> dict[str, dict[str, str]]:
    """Authorization headers per user name (signed in through the API)."""
    out = {}
    for name, (_role, password, _regions) in users.items():
        r = client.post("/api/v1/auth/token", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        out[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return out
