"""The camera's snapshot route: authorised, privacy-masked before it leaves the hub, cacheable."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from sqlalchemy import text

from tests.api.fixtures import COUNTY_B, device_id

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def camera(client, headers, engine):
    body = {"id": device_id(), "lon": 115.3801, "lat": 28.3801, "heading_deg": 0, "focal_mm": 4}
    r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
    assert r.status_code == 201, r.text
    image = np.full((120, 160, 3), 200, np.uint8)  # light grey everywhere
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    privacy = [{"points": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}]  # the left half is a home
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO device_snapshots (device_id, at, jpeg) VALUES (:d, now(), :j)"),
            {"d": body["id"], "j": jpeg.tobytes()},
        )
        conn.execute(
            text("INSERT INTO vision_cameras (device_id, config) VALUES (:d, CAST(:c AS jsonb))"),
            {"d": body["id"], "c": json.dumps({"id": body["id"], "privacy": privacy})},
        )
    return body["id"]


def test_snapshot_is_masked_and_cacheable(client, headers, camera):
    r = client.get(f"/api/v1/devices/{camera}/snapshot", headers=headers["t-operator"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert img[:, :70].mean() < 10 and img[:, 90:].mean() > 180
    assert "private" in r.headers["cache-control"] and r.headers["x-snapshot-at"]
    again = client.get(
        f"/api/v1/devices/{camera}/snapshot",
        headers={**headers["t-operator"], "If-None-Match": r.headers["etag"]},
    )
    assert again.status_code == 304 and not again.content


def test_snapshot_needs_sign_in_region_and_a_picture(client, headers, camera):
    assert client.get(f"/api/v1/devices/{camera}/snapshot").status_code == 401
    r = client.get(f"/api/v1/devices/{camera}/snapshot", headers=headers["t-installer-b"])
    assert r.status_code == 403
    other = device_id(COUNTY_B)
    r = client.get(f"/api/v1/devices/{other}/snapshot", headers=headers["t-operator"])
    assert r.status_code == 404 and r.json()["code"] == "device_not_found"
