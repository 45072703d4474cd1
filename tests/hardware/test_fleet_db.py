"""Loading a region's registered devices for the simulator, with roads and railways for movers."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from simulators.fleet_db import load_fleet

ROAD = [(87.60, 43.80), (87.61, 43.805), (87.62, 43.81)]
RAIL = [(87.60, 43.79), (87.63, 43.79)]


def _line(points: list[tuple[float, float]]) -> str:
    return "MULTILINESTRING((" + ", ".join(f"{x} {y}" for x, y in points) + "))"


@pytest.fixture(scope="module")
def region_devices(engine) -> str:
    rows = [
        ("65010401001320000001", "132", "ip_camera", None, 87.605, 43.802, 60),
        ("65010401001380000001", "138", "mobile", "patrol_car", 87.611, 43.806, 30),
        ("65010401001390000001", "139", "other_peripheral", "livestock_collar", 87.61, 43.791, 600),
        ("65010401001340000001", "134", "alarm_input", "smoke_detector", 87.60, 43.80, 3600),
    ]
    with engine.begin() as conn:
        for dev_id, tc, kind, sub, lon, lat, hb in rows:
            conn.execute(
                text(
                    "INSERT INTO devices (id, type_code, kind, sub_kind, position, heartbeat_s, "
                    "registered_by) VALUES (:id, :tc, :k, :s, ST_SetSRID(ST_Point(:lon, :lat), "
                    "4326), :hb, 'synth') "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                {"id": dev_id, "tc": tc, "k": kind, "s": sub, "lon": lon, "lat": lat, "hb": hb},
            )
        conn.execute(
            text(
                "INSERT INTO roads (source_key, name, geom) VALUES "
                "('fleet-test-road', 'test road', ST_GeomFromText(:g, 4326)) "
                "ON CONFLICT (source_key) DO NOTHING"
            ),
            {"g": _line(ROAD)},
        )
        conn.execute(
            text(
                "INSERT INTO railways (source_key, name, geom) VALUES "
                "('fleet-test-rail', 'test railway', ST_GeomFromText(:g, 4326)) "
                "ON CONFLICT (source_key) DO NOTHING"
            ),
            {"g": _line(RAIL)},
        )
    return "650104"


def test_loads_region_devices_with_their_kinds_and_routes(engine, region_devices) -> None:
    fleet = {d.id: d for d in load_fleet(engine, region_devices, seed=1)}
    assert set(fleet) == {
        "65010401001320000001",
        "65010401001380000001",
        "65010401001390000001",
        "65010401001340000001",
    }
    car = fleet["65010401001380000001"]
    assert car.spec.name == "patrol_car" and car.route == tuple(ROAD)
    collar = fleet["65010401001390000001"]
    assert collar.spec.name == "livestock_collar" and collar.route == tuple(RAIL)
    smoke = fleet["65010401001340000001"]
    assert smoke.spec.name == "smoke_detector" and smoke.heartbeat_interval_s == 3600
    assert fleet["65010401001320000001"].route is None


def test_other_regions_are_left_out_and_bad_region_refused(engine, region_devices) -> None:
    assert all(d.id.startswith("6501") for d in load_fleet(engine, "6501"))
    assert not [d for d in load_fleet(engine, "650105") if d.id.startswith("650104")]
    with pytest.raises(ValueError, match="region: 'x1'"):
        load_fleet(engine, "x1")


def test_devices_registered_by_people_are_never_simulated(engine, region_devices) -> None:
    """The demo misled: an installer's device looked online with no hardware behind it."""
    with engine.begin() as conn:
        for dev_id, actor in (
            ("65010401001320000091", "t-installer"),
            ("65010401001320000092", None),
        ):
            conn.execute(
                text(
                    "INSERT INTO devices (id, type_code, kind, position, heartbeat_s, registered_by) "
                    "VALUES (:id, '132', 'ip_camera', ST_SetSRID(ST_Point(87.606, 43.803), 4326), "
                    "60, :a) ON CONFLICT (id) DO NOTHING"
                ),
                {"id": dev_id, "a": actor},
            )
    ids = {d.id for d in load_fleet(engine, region_devices)}
    assert "65010401001320000001" in ids
    assert not ids & {"65010401001320000091", "65010401001320000092"}
