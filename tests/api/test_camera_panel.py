"""A camera's panel data: health with evidence and since-when, 24 h online history, linked alarms."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from sqlalchemy import text

from ingest.alarms import AlarmIn, store_alarms
from tests.api.fixtures import COUNTY_B, device_id

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def _jpeg(value: int) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", np.full((60, 80, 3), value, np.uint8))
    assert ok
    return jpeg.tobytes()


@pytest.fixture(scope="module")
def camera(client, headers, engine):
    body = {"id": device_id(), "lon": 115.3811, "lat": 28.3811, "heading_deg": 90, "focal_mm": 4}
    r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
    assert r.status_code == 201, r.text
    cam = body["id"]
    # diagnoses, oldest first: intact, then blur, then blur + occlusion (the newest has no picture)
    checks = [
        (NOW - timedelta(minutes=40), True, [], None),
        (NOW - timedelta(minutes=30), False, ["blur"], _jpeg(90)),
        (NOW - timedelta(minutes=20), False, ["blur", "occlusion"], _jpeg(30)),
        (NOW - timedelta(minutes=10), False, ["blur", "occlusion"], None),
    ]
    privacy = [{"points": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}]
    with engine.begin() as conn:
        # registered 30 h ago: the whole 24 h window counts
        conn.execute(
            text("UPDATE devices SET registered_at = :t WHERE id = :d"),
            {"d": cam, "t": NOW - timedelta(hours=30)},
        )
        for ts, intact, faults, jpeg in checks:
            conn.execute(
                text(
                    "INSERT INTO camera_health (device_id, ts, intact, faults, metrics, thumbnail) "
                    "VALUES (:d, :ts, :i, CAST(:f AS jsonb), CAST(:m AS jsonb), :j)"
                ),
                {
                    "d": cam,
                    "ts": ts,
                    "i": intact,
                    "f": json.dumps(faults),
                    "m": json.dumps({"fault_scores": {f: 0.8 for f in faults}}),
                    "j": jpeg,
                },
            )
        conn.execute(
            text("INSERT INTO vision_cameras (device_id, config) VALUES (:d, CAST(:c AS jsonb))"),
            {"d": cam, "c": json.dumps({"id": cam, "privacy": privacy})},
        )
        # online 26 h ago to 12 h ago (half of it in the window), then from 6 h ago on
        conn.execute(
            text(
                "INSERT INTO device_presence (device_id, started_at, ended_at, end_reason) VALUES "
                "(:d, :a, :b, 'missed_heartbeats'), (:d, :c, NULL, NULL)"
            ),
            {
                "d": cam,
                "a": NOW - timedelta(hours=26),
                "b": NOW - timedelta(hours=12),
                "c": NOW - timedelta(hours=6),
            },
        )
    return cam


def test_health_names_each_fault_since_when_with_evidence(client, headers, camera):
    r = client.get(f"/api/v1/devices/{camera}/health", headers=headers["t-operator"])
    assert r.status_code == 200, r.text
    h = r.json()
    assert h["checked"] and h["intact"] is False
    faults = {f["code"]: f for f in h["faults"]}
    assert set(faults) == {"blur", "occlusion"}
    since = {k: datetime.fromisoformat(f["since"]) for k, f in faults.items()}
    assert since["blur"] == NOW - timedelta(minutes=30)
    assert since["occlusion"] == NOW - timedelta(minutes=20)
    # the newest diagnosis of each run with a picture holds the evidence
    for f in faults.values():
        assert datetime.fromisoformat(f["evidence_at"]) == NOW - timedelta(minutes=20)
        assert f["score"] == pytest.approx(0.8)
    assert [c["intact"] for c in h["recent"]] == [False, False, False, True]


def test_evidence_picture_is_masked_and_picked_by_time(client, headers, camera):
    at = (NOW - timedelta(minutes=25)).isoformat()
    r = client.get(
        f"/api/v1/devices/{camera}/health/evidence",
        params={"at": at},
        headers=headers["t-operator"],
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert img[:, :35].mean() < 10  # the privacy half is black
    assert abs(img[:, 45:].mean() - 90) < 10  # the 30-minutes-ago picture, not the newer one
    newest = client.get(
        f"/api/v1/devices/{camera}/health/evidence", headers=headers["t-operator"]
    ).content
    assert abs(cv2.imdecode(np.frombuffer(newest, np.uint8), 0)[:, 45:].mean() - 30) < 10
    early = client.get(
        f"/api/v1/devices/{camera}/health/evidence",
        params={"at": (NOW - timedelta(hours=2)).isoformat()},
        headers=headers["t-operator"],
    )
    assert early.status_code == 404 and early.json()["code"] == "no_evidence"


def test_presence_over_24h(client, headers, camera):
    r = client.get(f"/api/v1/devices/{camera}/presence", headers=headers["t-operator"])
    assert r.status_code == 200, r.text
    p = r.json()
    assert len(p["intervals"]) == 2
    first, last = p["intervals"]
    assert first["end_reason"] == "missed_heartbeats" and last["end"] is None
    # clipped to the window: starts 24 h ago, not 26
    assert datetime.fromisoformat(first["start"]) >= NOW - timedelta(hours=24, minutes=1)
    assert p["online_share"] == pytest.approx(18 / 24, abs=0.01)
    r = client.get(
        f"/api/v1/devices/{camera}/presence", params={"hours": 4}, headers=headers["t-operator"]
    )
    assert r.json()["online_share"] == pytest.approx(1.0, abs=0.01)
    bad = client.get(
        f"/api/v1/devices/{camera}/presence", params={"hours": 0}, headers=headers["t-operator"]
    )
    assert bad.status_code == 422


def test_linked_alarms_own_and_as_camera(client, headers, camera, engine):
    sensor = device_id(type_code="134")
    r = client.post(
        "/api/v1/devices",
        headers=headers["t-installer"],
        json={"id": sensor, "lon": 115.3815, "lat": 28.3811},
    )
    assert r.status_code == 201, r.text
    t = time.time()
    with engine.begin() as conn:
        own = store_alarms(conn, [AlarmIn(camera, f"own-{t}", "tamper", 2, t, None, None)])
        near = store_alarms(
            conn, [AlarmIn(sensor, f"near-{t}", "intrusion", 1, t, 115.3815, 28.3811)]
        )
        conn.execute(
            text("UPDATE alarms SET state = 'resolved' WHERE id = :id"), {"id": own.new[0]["id"]}
        )
    r = client.get(f"/api/v1/devices/{camera}/alarms", headers=headers["t-operator"])
    assert r.status_code == 200, r.text
    got = {a["id"]: a for a in r.json()}
    assert got[own.new[0]["id"]]["relation"] == "own"
    linked = got[near.new[0]["id"]]
    assert linked["relation"] in ("covers", "nearest") and linked["distance_m"] > 0
    assert r.json()[0]["state"] in ("new", "acknowledged", "dispatched")  # open first


def test_panel_routes_need_sign_in_and_region(client, headers, camera):
    for path in ("health", "health/evidence", "presence", "alarms"):
        assert client.get(f"/api/v1/devices/{camera}/{path}").status_code == 401
        r = client.get(f"/api/v1/devices/{camera}/{path}", headers=headers["t-installer-b"])
        assert r.status_code == 403, path
        other = device_id(COUNTY_B)
        r = client.get(f"/api/v1/devices/{other}/{path}", headers=headers["t-operator"])
        assert r.status_code == 404 and r.json()["code"] == "device_not_found"
