"""Find and watch: device search by code, name and village, the offline list, the KPI strip."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from ingest.alarms import AlarmIn, store_alarms
from tests.api.fixtures import device_id

pytestmark = pytest.mark.integration

BOX = "115.390,28.490,115.395,28.495"  # in 西村 (village A2); no other test puts devices here
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def fleet(client, headers, engine):
    """Four cameras and a sensor in the box: online, offline since 2 h, offline since 10 min..."""
    ids = {}
    for n, (key, lon, name) in enumerate(
        [
            ("up", 115.3910, "北口杆"),
            ("down_long", 115.3915, "南桥杆"),
            ("down_recent", 115.3920, "祠堂杆"),
            ("unnetworked", 115.3925, "仓库杆"),
        ]
    ):
        body = {"id": device_id(), "lon": lon, "lat": 28.4920 + n * 0.0001, "name": name}
        body.update(heading_deg=0, focal_mm=4)
        r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
        assert r.status_code == 201, r.text
        ids[key] = body["id"]
    sensor = {"id": device_id(type_code="134"), "lon": 115.3930, "lat": 28.4930}
    assert client.post("/api/v1/devices", headers=headers["t-installer"], json=sensor).is_success
    ids["sensor"] = sensor["id"]
    t48 = NOW - timedelta(hours=48)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE devices SET registered_at = :t WHERE id = ANY(:ids)"),
            {"t": t48, "ids": list(ids.values())},
        )
        conn.execute(
            text("UPDATE devices SET networked = false, status = 'unknown' WHERE id = :d"),
            {"d": ids["unnetworked"]},
        )
        conn.execute(text("UPDATE devices SET status = 'online' WHERE id = :d"), {"d": ids["up"]})
        conn.execute(
            text("UPDATE devices SET status = 'offline' WHERE id = ANY(:ids)"),
            {"ids": [ids["down_long"], ids["down_recent"]]},
        )
        presence = [
            (ids["up"], NOW - timedelta(hours=30), None),  # the whole window
            (ids["down_long"], NOW - timedelta(hours=30), NOW - timedelta(hours=2)),  # 22 h
            (ids["down_recent"], NOW - timedelta(hours=12), NOW - timedelta(minutes=10)),
        ]
        for dev, a, b in presence:
            conn.execute(
                text(
                    "INSERT INTO device_presence (device_id, started_at, ended_at, end_reason) "
                    "VALUES (:d, :a, :b, CASE WHEN CAST(:b AS timestamptz) IS NULL THEN NULL "
                    "ELSE 'missed_heartbeats' END)"
                ),
                {"d": dev, "a": a, "b": b},
            )
        for dev, intact in ((ids["up"], True), (ids["down_long"], False)):
            conn.execute(
                text(
                    "INSERT INTO camera_health (device_id, ts, intact, faults) "
                    "VALUES (:d, now(), :i, CAST(:f AS jsonb))"
                ),
                {"d": dev, "i": intact, "f": json.dumps([] if intact else ["blur"])},
            )
        t = time.time()
        store_alarms(
            conn,
            [
                AlarmIn(ids["sensor"], f"kpi-1-{t}", "intrusion", 1, t, 115.3930, 28.4930),
                AlarmIn(ids["up"], f"kpi-2-{t}", "tamper", 3, t, 115.3910, 28.4920),
            ],
        )
    return ids


def _get(client, headers, path, **params):
    r = client.get(f"/api/v1{path}", params=params, headers=headers["t-operator"])
    assert r.status_code == 200, r.text
    return r.json()


def test_search_by_code_name_and_village(client, headers, fleet):
    by_name = _get(client, headers, "/devices", q="祠堂")["items"]
    assert [d["id"] for d in by_name] == [fleet["down_recent"]]
    assert by_name[0]["village_name"] == "西村" and by_name[0]["township_name"] == "筠阳街道"
    by_code = _get(client, headers, "/devices", q=fleet["up"][:18])["items"]
    assert fleet["up"] in [d["id"] for d in by_code]
    in_village = {d["id"] for d in _get(client, headers, "/devices", q="西村", bbox=BOX)["items"]}
    assert in_village == set(fleet.values())
    # % and _ are literal, not wildcards
    assert _get(client, headers, "/devices", q="%", bbox=BOX)["items"] == []


def test_offline_list_latest_outage_first(client, headers, fleet):
    items = _get(client, headers, "/devices", status="offline", order="offline_since", bbox=BOX)[
        "items"
    ]
    assert [d["id"] for d in items] == [fleet["down_recent"], fleet["down_long"]]
    since = datetime.fromisoformat(items[1]["offline_since"])
    assert abs((since - (NOW - timedelta(hours=2))).total_seconds()) < 1


def test_health_filter(client, headers, fleet):
    faulty = _get(client, headers, "/devices", health="faulty", bbox=BOX)["items"]
    assert [(d["id"], d["health"]) for d in faulty] == [(fleet["down_long"], "faulty")]
    unchecked = {
        d["id"] for d in _get(client, headers, "/devices", health="unchecked", bbox=BOX)["items"]
    }
    assert unchecked == {fleet["down_recent"], fleet["unnetworked"], fleet["sensor"]}


def test_kpi_uses_the_audit_definitions(client, headers, fleet):
    k = _get(client, headers, "/devices/kpi", bbox=BOX)
    assert k["cameras"] == 4 and k["networked"] == 3 and k["online_now"] == 1
    assert k["networking_rate"] == pytest.approx(0.75)
    # networked cameras over 24 h: 24 h + 22 h + (12 h - 10 min) of 72 h
    assert k["online_rate"] == pytest.approx((24 + 22 + 12 - 1 / 6) / 72, abs=0.002)
    assert k["checked"] == 2 and k["faulty"] == 1 and k["intact_rate"] == pytest.approx(0.5)
    assert k["open_alarms"] == {"1": 1, "2": 0, "3": 1, "4": 0}
    empty = _get(client, headers, "/devices/kpi", bbox="100.0,10.0,100.001,10.001")
    assert empty["cameras"] == 0 and empty["online_rate"] is None


def test_kpi_and_list_refuse_bad_input(client, headers):
    h = headers["t-operator"]
    assert client.get("/api/v1/devices/kpi", params={"hours": 0}, headers=h).status_code == 422
    assert client.get("/api/v1/devices/kpi", params={"bbox": "x"}, headers=h).status_code == 422
    assert client.get("/api/v1/devices", params={"order": "x"}, headers=h).status_code == 422
    assert client.get("/api/v1/devices", params={"health": "x"}, headers=h).status_code == 422
    assert client.get("/api/v1/devices/kpi").status_code == 401
