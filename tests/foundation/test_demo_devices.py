"""The demo's extra devices: sensors in villages, patrol cars on roads, collars by a railway fence."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from gridwatch.db import drop_database, get_engine, migrate
from simulators.demo_devices import LIVESTOCK_COLLARS, PATROL_CARS, ensure_demo_devices


@pytest.fixture()
def small_county(db_url: str):
    """A database of its own holding simulators.region's small county (other tests count 360121 devices)."""
    from simulators.region import generate_region

    url = db_url.rsplit("/", 1)[0] + f"/gridwatch_test_demo_{uuid.uuid4().hex[:8]}"
    migrate(url)
    generate_region(url, seed=7, scale="small")
    yield get_engine(url=url)
    get_engine(url=url).dispose()
    drop_database(url)


def test_demo_devices_are_added_once_inside_the_county(small_county) -> None:
    first = ensure_demo_devices(small_county, "360121", seed=3)
    again = ensure_demo_devices(small_county, "360121", seed=3)
    assert first["created"] and not again["created"]
    with small_county.connect() as conn:
        villages = conn.execute(
            text("SELECT count(*) FROM regions WHERE level = 5 AND geom IS NOT NULL")
        ).scalar()
        kinds = dict(
            conn.execute(
                text(
                    "SELECT coalesce(sub_kind, kind), count(*) FROM devices "
                    "WHERE kind IN ('alarm_input', 'mobile', 'other_peripheral') GROUP BY 1"
                )
            ).all()
        )
        sensors = sum(
            kinds.get(k, 0)
            for k in ("infrared_detector", "door_sensor", "smoke_detector", "panic_button")
        )
        assert sensors == villages
        assert kinds["patrol_car"] == PATROL_CARS
        outside = conn.execute(
            text(
                "SELECT count(*) FROM devices d WHERE d.kind IN ('alarm_input', 'mobile') "
                "AND (d.region_code IS NULL OR NOT d.region_code LIKE '360121%')"
            )
        ).scalar()
        assert outside == 0
        assert conn.execute(text("SELECT count(*) FROM railways")).scalar() > 0
        assert kinds["livestock_collar"] == LIVESTOCK_COLLARS
        fence = conn.execute(
            text("SELECT kind, alarm_kind, cardinality(device_ids) FROM geofences")
        ).one()
        assert fence == ("keep_out", "livestock_on_railway", LIVESTOCK_COLLARS)
