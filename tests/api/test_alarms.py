"""Alarms through the API: filters, detail with linked cameras and trail, the lifecycle by an operator."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from ingest.alarms import AlarmIn, store_alarms
from ingest.events import emit_events
from tests.api.fixtures import COUNTY_B, device_id


def _camera(client, headers, lon, lat, county=None, who="t-installer"):
    body = {
        "id": device_id(county) if county else device_id(),
        "lon": lon,
        "lat": lat,
        "heading_deg": 0,
        "focal_mm": 4,
    }
    r = client.post("/api/v1/devices", headers=headers[who], json=body)
    assert r.status_code == 201, r.text
    return body["id"]


def _raise(engine, dev, kind="intrusion", severity=2, lon=None, lat=None, tag=""):
    with engine.begin() as conn:
        out = store_alarms(
            conn,
            [
                AlarmIn(
                    dev,
                    f"m-{dev}-{kind}-{time.time_ns()}{tag}",
                    kind,
                    severity,
                    time.time(),
                    lon,
                    lat,
                )
            ],
        )
        emit_events(conn, out.events())
    return out.new[0]["id"]


@pytest.fixture(scope="module")
def scene(client, headers, engine):
    cam = _camera(client, headers, 115.371, 28.371)
    other = _camera(client, headers, 114.951, 27.801, county=COUNTY_B, who="t-installer-b")
    a1 = _raise(engine, cam, "intrusion", 1, 115.371, 28.3711)  # in front of the camera
    a2 = _raise(engine, cam, "smoke", 3)
    b1 = _raise(engine, other, "panic", 2)
    return {"cam": cam, "other": other, "a1": a1, "a2": a2, "b1": b1}


def test_list_filters(client, headers, scene):
    h = headers["t-operator"]
    ids = lambda r: {a["id"] for a in r.json()["items"]}  # noqa: E731
    r = client.get("/api/v1/alarms", headers=h, params={"state": "open", "limit": 1000})
    assert r.status_code == 200 and {scene["a1"], scene["a2"], scene["b1"]} <= ids(r)
    r = client.get(
        "/api/v1/alarms", headers=h, params={"severity_max": 2, "device_id": scene["cam"]}
    )
    assert ids(r) == {scene["a1"]}
    r = client.get("/api/v1/alarms", headers=h, params={"region": "360983000000", "limit": 1000})
    assert scene["b1"] not in ids(r) and scene["a1"] in ids(r)
    r = client.get("/api/v1/alarms", headers=h, params={"since": "2100-01-01T00:00:00Z"})
    assert r.json()["items"] == []
    r = client.get("/api/v1/alarms", headers=h, params={"state": "bogus"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"].startswith("state")
    r = client.get(
        "/api/v1/alarms",
        headers=h,
        params={"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
    )
    assert r.status_code == 422


def test_detail_links_the_covering_camera(client, headers, scene):
    d = client.get(f"/api/v1/alarms/{scene['a1']}", headers=headers["t-operator"]).json()
    assert d["cameras"] and d["cameras"][0]["device_id"] == scene["cam"]
    assert d["cameras"][0]["relation"] == "covers" and d["cameras"][0]["fov"]["type"] == "Polygon"
    assert client.get("/api/v1/alarms/999999999", headers=headers["t-operator"]).status_code == 404


def test_lifecycle_by_operator_with_trail_and_audit(client, headers, scene, engine):
    h = headers["t-operator"]
    aid = scene["a2"]
    r = client.post(f"/api/v1/alarms/{aid}/dispatch", headers=h, json={})
    assert r.status_code == 409 and "allowed next" in r.json()["detail"]
    r = client.post(f"/api/v1/alarms/{aid}/acknowledge", headers=h, json={"note": "seen on camera"})
    assert (
        r.status_code == 200
        and r.json()["state"] == "acknowledged"
        and r.json()["acknowledged_by"] == "t-operator"
    )
    assert (
        client.post(f"/api/v1/alarms/{aid}/dispatch", headers=h, json={}).json()["state"]
        == "dispatched"
    )
    r = client.post(f"/api/v1/alarms/{aid}/resolve", headers=h)
    assert r.status_code == 200
    d = r.json()
    assert d["state"] == "resolved" and d["closed_by"] == "t-operator"
    assert [s["state"] for s in d["trail"]] == ["new", "acknowledged", "dispatched", "resolved"]
    assert d["trail"][1]["note"] == "seen on camera" and d["trail"][1]["actor"] == "t-operator"
    assert client.post(f"/api/v1/alarms/{aid}/false-alarm", headers=h, json={}).status_code == 409
    with engine.connect() as conn:
        actions = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT action FROM audit_log WHERE entity = 'alarm' AND entity_id = :i ORDER BY id"
                ),
                {"i": str(aid)},
            )
        ]
    assert actions == ["alarm.acknowledge", "alarm.dispatch", "alarm.resolve"]


def test_geojson_alarms(client, headers, scene):
    fc = client.get(
        "/api/v1/geo/alarms",
        headers=headers["t-auditor"],
        params={"bbox": "115.3,28.35,115.5,28.5", "limit": 1000},
    ).json()
    assert scene["a1"] in {f["id"] for f in fc["features"]}
