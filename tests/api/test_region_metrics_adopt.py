"""Routes whose queries live in the domain modules (geo.regions, api.metrics, ingest.pending,
gridwatch.db): one region with its counts, the Prometheus gauges, health's schema heads and the
adoption of a pending device, each checked against the database itself."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from tests.api.fixtures import BOX_TOWN_A, COUNTY_A, TOWN_A, VILLAGE_A1, device_id

pytestmark = pytest.mark.integration

CAM = {"heading_deg": 90, "focal_mm": 4}


def _register(client, headers, lon: float, lat: float) -> str:
    dev = device_id(COUNTY_A)
    body = {"id": dev, "lon": lon, "lat": lat, **CAM}
    r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
    assert r.status_code == 201, r.text
    return dev


def test_one_region_with_its_counts(client, headers, places, engine):
    online = _register(client, headers, 115.33, 28.39)
    _register(client, headers, 115.34, 28.44)
    with engine.begin() as conn:
        conn.execute(text("UPDATE devices SET status = 'online' WHERE id = :d"), {"d": online})
        want = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE true), count(*) FILTER (WHERE status = 'online') "
                "FROM devices WHERE retired_at IS NULL AND left(region_code, 9) = :p"
            ),
            {"p": TOWN_A[:9]},
        ).one()
    r = client.get(f"/api/v1/regions/{TOWN_A}", headers=headers["t-operator"])
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["code"], got["level"], got["parent_code"]) == (TOWN_A, 4, COUNTY_A)
    assert got["children"] == 2  # the two fixture villages
    assert (got["devices"], got["online"]) == tuple(want) and got["online"] >= 1
    assert got["bbox"] == pytest.approx(list(BOX_TOWN_A))
    missing = client.get("/api/v1/regions/360983999000", headers=headers["t-operator"])
    assert missing.status_code == 404


def test_metrics_count_what_the_database_holds(client, engine):
    body = client.get("/api/v1/metrics").text
    with engine.connect() as conn:
        by_status = dict(
            conn.execute(
                text(
                    "SELECT status, count(*) FROM devices WHERE retired_at IS NULL GROUP BY status"
                )
            ).all()
        )
        dead = conn.execute(text("SELECT count(*) FROM dead_letters")).scalar_one()
    assert "database unreachable" not in body
    for status, count in by_status.items():
        assert f'gridwatch_devices{{status="{status}"}} {count}' in body
    assert f'gridwatch_dead_letters{{set="all"}} {dead}' in body
    assert re.search(r'^gridwatch_pending_devices\{set="all"\} \d+$', body, re.M)


def test_health_names_the_schema_heads(client, engine):
    with engine.connect() as conn:
        heads = sorted(r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version")))
    r = client.get("/api/v1/health")
    assert r.json()["database"] == "ok" and r.json()["schema_heads"] == heads and heads


def test_adopting_a_pending_device_registers_it_where_it_reported(client, headers, engine):
    dev = device_id(COUNTY_A)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO pending_devices (id, last_topic, position) VALUES "
                "(:d, 'gw/v1/x/heartbeat', ST_SetSRID(ST_MakePoint(115.331, 28.381), 4326))"
            ),
            {"d": dev},
        )
    r = client.post(
        f"/api/v1/pending-devices/{dev}/adopt", headers=headers["t-installer"], json=CAM
    )
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM pending_devices WHERE id = :d"), {"d": dev}
        ).scalar_one()
        row = conn.execute(
            text("SELECT ST_X(position), ST_Y(position), region_code FROM devices WHERE id = :d"),
            {"d": dev},
        ).one()
    assert left == 0
    assert row[0] == pytest.approx(115.331) and row[1] == pytest.approx(28.381)
    assert row[2] == VILLAGE_A1
    again = client.post(
        f"/api/v1/pending-devices/{dev}/adopt", headers=headers["t-installer"], json=CAM
    )
    assert again.status_code == 404


def test_a_page_opens_on_the_region_asked_for(client, places):
    script = client.get(f"/map/page.js?region={TOWN_A}").text
    got = re.search(r'"bounds": \[\[([-\d.]+), ([-\d.]+)\], \[([-\d.]+), ([-\d.]+)\]\]', script)
    assert got, script[:500]
    west, south, east, north = BOX_TOWN_A
    assert [float(v) for v in got.groups()] == pytest.approx([south, west, north, east])
