"""Test fixtures: the real local PostGIS and Mosquitto, a fresh migrated database per run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Tests get their own services (own data dir and ports) so they never disturb a running demo,
# and a fresh database for every run. This runs before any gridwatch module reads settings.
_TEST_DB = f"gridwatch_test_{uuid.uuid4().hex[:10]}"
if not os.environ.get("GRIDWATCH_DATABASE_URL"):
    os.environ.setdefault("GRIDWATCH_HOME", str(ROOT / ".gridwatch" / "test"))
    os.environ.setdefault("GRIDWATCH_PG_PORT", "55442")
    os.environ["GRIDWATCH_DB_NAME"] = _TEST_DB
else:
    base, _, _ = os.environ["GRIDWATCH_DATABASE_URL"].rpartition("/")
    os.environ["GRIDWATCH_DATABASE_URL"] = f"{base}/{_TEST_DB}"
if not os.environ.get("GRIDWATCH_MQTT_URL"):
    os.environ.setdefault("GRIDWATCH_MQTT_PORT", "18840")
    os.environ.setdefault("GRIDWATCH_HOME", str(ROOT / ".gridwatch" / "test"))


@dataclass(frozen=True)
class Broker:
    """Where the test broker listens and the hub's credentials on it."""

    host: str
    port: int
    user: str
    password: str


@pytest.fixture(scope="session")
def services() -> Iterator[None]:
    """Start (or reuse) the local PostGIS and Mosquitto for this test run."""
    from gridwatch.services import services_up

    services_up()
    yield


@pytest.fixture(scope="session")
def db_url(services: None) -> Iterator[str]:
    """URL of a fresh database, migrated to every head, dropped after the run."""
    from gridwatch.db import drop_database, migrate
    from gridwatch.settings import get_settings

    url = get_settings().db_url()
    migrate(url)
    yield url
    if not os.environ.get("GRIDWATCH_KEEP_TEST_DB"):
        from gridwatch.db import get_engine

        get_engine(url=url).dispose()
        drop_database(url)


@pytest.fixture(scope="session")
def engine(db_url: str):
    """The SQLAlchemy engine on the test database."""
    from gridwatch.db import get_engine

    return get_engine(url=db_url)


@pytest.fixture(scope="session")
def mqtt_broker(services: None) -> Broker:
    """The real Mosquitto the project started, with the hub's credentials."""
    from gridwatch.settings import get_settings

    settings = get_settings()
    host, port = settings.mqtt_endpoint()
    user, password = settings.hub_credentials()
    return Broker(host, port, user, password)
