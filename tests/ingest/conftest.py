"""Fixtures for ingest tests: a psycopg connection, unique test devices, a batch store."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator

import psycopg
import pytest

from hardware.gbid import compose
from ingest.config import IngestSettings

_serials = itertools.count(random.randrange(1, 400_000))

TYPE_CODES = {
    "ip_camera": 132,
    "alarm_input": 134,
    "smoke_detector": 134,
    "patrol_car": 138,
    "mobile": 138,
    "livestock_collar": 139,
}


def new_device_id(kind: str = "ip_camera", region: str = "360121") -> str:
    """A fresh, valid 20-digit id (unique within this test run)."""
    return compose(region, TYPE_CODES[kind], next(_serials)).code


@pytest.fixture()
def pg(db_url: str) -> Iterator[psycopg.Connection]:
    """A psycopg 3 connection on the test database (the test commits what it wants kept)."""
    conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
    yield conn
    conn.rollback()
    conn.close()


@pytest.fixture()
def make_device(pg: psycopg.Connection) -> Callable[..., str]:
    """Insert a registered device directly (committed) and return its id."""

    def make(
        kind: str = "ip_camera",
        lon: float | None = 115.9,
        lat: float | None = 28.68,
        *,
        fov_wkt: str | None = None,
        heartbeat_s: int = 60,
        region_code: str | None = None,
        device_id: str | None = None,
    ) -> str:
        device_id = device_id or new_device_id(kind)
        pg.execute(
            "INSERT INTO devices (id, type_code, kind, position, fov, heartbeat_s, region_code) "
            "VALUES (%s, %s, %s, CASE WHEN %s::float8 IS NULL THEN NULL ELSE "
            "ST_SetSRID(ST_MakePoint(%s, %s), 4326) END, ST_GeomFromText(%s, 4326), %s, %s)",
            (
                device_id,
                device_id[10:13],
                kind,
                lon,
                lon,
                lat,
                fov_wkt,
                heartbeat_s,
                region_code,
            ),
        )
        pg.commit()
        return device_id

    return make


@pytest.fixture()
def cfg() -> IngestSettings:
    return IngestSettings(share_group="", client_id="test-ingest")


@pytest.fixture()
def store(db_url: str, cfg: IngestSettings) -> Iterator:
    """A BatchStore on its own connection (what the worker uses per batch)."""
    from ingest.store import BatchStore

    conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
    yield BatchStore(conn, cfg, max_payload=4096)
    conn.close()
