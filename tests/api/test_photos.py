"""Installation photos: stored re-encoded and bounded, scoped to the installer's region, logged."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sqlalchemy import text

from tests.api.fixtures import COUNTY_B, device_id

pytestmark = pytest.mark.integration

CAM = {"heading_deg": 90, "focal_mm": 4}


def _jpeg(w: int = 1200, h: int = 900) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    cv2.rectangle(img, (100, 100), (w - 100, h - 100), (40, 160, 220), -1)
    return cv2.imencode(".jpg", img)[1].tobytes()


@pytest.fixture(scope="module")
def device(client, headers) -> str:
    dev = device_id()
    body = {"id": dev, "lon": 115.356, "lat": 28.407, **CAM}
    r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
    assert r.status_code == 201, r.text
    return dev


def test_a_photo_is_kept_with_the_device_and_logged(client, headers, device, engine):
    h = {**headers["t-installer"], "Content-Type": "image/jpeg"}
    big = _jpeg(4000, 3000)
    r = client.post(f"/api/v1/devices/{device}/photos?note=杆体全景", headers=h, content=big)
    assert r.status_code == 201, r.text
    photo = r.json()
    assert max(photo["width"], photo["height"]) == 2048 and photo["taken_by"] == "t-installer"
    listed = client.get(f"/api/v1/devices/{device}/photos", headers=headers["t-operator"]).json()
    assert [p["id"] for p in listed] == [photo["id"]] and listed[0]["note"] == "杆体全景"
    img = client.get(photo["url"], headers=headers["t-operator"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert img.content[:3] == b"\xff\xd8\xff" and len(img.content) < len(big)
    with engine.connect() as conn:
        logged = conn.execute(
            text(
                "SELECT count(*) FROM audit_log WHERE action = 'device.photo_added' "
                "AND entity_id = :d"
            ),
            {"d": device},
        ).scalar()
    assert logged == 1


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("image/jpeg", b"<svg onload=alert(1)>", 415),  # not an image at all
        ("image/gif", b"GIF89a....", 415),
        ("image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, 422),  # a JPEG header, no picture
        ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, 422),
    ],
)
def test_what_is_not_a_photo_is_refused_with_the_reason(
    client, headers, device, content_type, body, status
):
    h = {**headers["t-installer"], "Content-Type": content_type}
    r = client.post(f"/api/v1/devices/{device}/photos", headers=h, content=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_oversized_uploads_are_refused_before_decoding(client, headers, device):
    h = {**headers["t-installer"], "Content-Type": "image/jpeg"}
    r = client.post(
        f"/api/v1/devices/{device}/photos", headers=h, content=b"\xff\xd8\xff" + b"\0" * (9 << 20)
    )
    assert r.status_code == 413


def test_photos_stay_in_the_installers_region(client, headers, device):
    other = device_id(COUNTY_B)
    r = client.post(
        "/api/v1/devices",
        headers=headers["t-installer-b"],
        json={"id": other, "lon": 114.95, "lat": 27.80, **CAM},
    )
    assert r.status_code == 201, r.text
    h = {**headers["t-installer"], "Content-Type": "image/jpeg"}
    assert (
        client.post(f"/api/v1/devices/{other}/photos", headers=h, content=_jpeg()).status_code
        == 403
    )
    assert (
        client.get(f"/api/v1/devices/{device}/photos", headers=headers["t-installer-b"]).status_code
        == 403
    )


def test_odd_but_valid_and_damaged_images_never_crash(client, headers, device):
    """Schemathesis found a fuzzed image that made OpenCV's resize assert (a 500)."""
    h = {**headers["t-installer"], "Content-Type": "image/png"}
    thin = cv2.imencode(".png", np.zeros((20, 5000, 3), np.uint8))[1].tobytes()
    assert (
        client.post(f"/api/v1/devices/{device}/photos", headers=h, content=thin).status_code == 201
    )
    for body in (
        cv2.imencode(".png", np.zeros((1, 9000, 3), np.uint8))[1].tobytes(),
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10,
    ):
        r = client.post(f"/api/v1/devices/{device}/photos", headers=h, content=body)
        assert r.status_code in (201, 422), r.text
