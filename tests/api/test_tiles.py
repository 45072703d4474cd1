"""Vector tiles: clusters below zoom 15 count every device once; devices and sectors above; context."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import text

from maps.tiles import MOVING_KINDS
from tests.api.fixtures import device_id
from tests.api.mvt import decode


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


@pytest.fixture(scope="module")
def cluster_devices(client, headers):
    """Five cameras within 200 m of each other near (115.385, 28.36)."""
    ids = []
    for i in range(5):
        body = {
            "id": device_id(),
            "lon": 115.385 + i * 0.0004,
            "lat": 28.36,
            "heading_deg": 10 * i,
            "focal_mm": 4,
        }
        r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
        assert r.status_code == 201, r.text
        ids.append(body["id"])
    return ids


def get(client, headers, layer, z, x, y):
    r = client.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    return decode(r.content)


def test_clusters_count_every_device_once(client, headers, cluster_devices, engine):
    h = headers["t-operator"]
    for z in (8, 11, 14):
        layers = get(client, h, "devices", *tile_of(115.386, 28.36, z))
        feats = layers["devices"]
        assert all(f["cluster"] for f in feats)
        w, s, e, n = _tile_bounds(*tile_of(115.386, 28.36, z))
        with engine.connect() as conn:
            # Patrol cars and trackers are not in the tiles (the map draws them live).
            expected = conn.execute(
                text(
                    "SELECT count(*) FROM devices WHERE retired_at IS NULL AND ST_X(position) >= :w "
                    "AND ST_X(position) < :e AND ST_Y(position) >= :s AND ST_Y(position) < :n "
                    "AND NOT (kind = ANY(:mk) OR coalesce(sub_kind, '') = ANY(:mk))"
                ),
                {"w": w, "s": s, "e": e, "n": n, "mk": list(MOVING_KINDS)},
            ).scalar()
        assert sum(f["count"] for f in feats) == expected >= 5, z


def _tile_bounds(z, x, y):
    n = 2**z

    def lat(yy):
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * yy / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def test_high_zoom_tiles_carry_devices_and_sectors(client, headers, cluster_devices):
    layers = get(client, headers["t-operator"], "devices", *tile_of(115.386, 28.36, 16))
    ids = {f["id"] for f in layers["devices"]}
    assert set(cluster_devices) <= ids
    assert all(
        f["_type"] == 1 and f["status"] in ("online", "offline", "unknown")
        for f in layers["devices"]
    )
    assert set(cluster_devices) <= {f["id"] for f in layers["coverage"]}
    assert all(f["_type"] == 3 for f in layers["coverage"])


def test_installer_tiles_hold_only_their_regions(client, headers, cluster_devices):
    layers = get(client, headers["t-installer-b"], "devices", *tile_of(115.386, 28.36, 16))
    assert not layers.get("devices")


def test_context_tile_has_boundaries_and_grids(client, headers, places):
    layers = get(client, headers["t-operator"], "context", *tile_of(115.33, 28.38, 13))
    codes = {f["code"] for f in layers["regions"]}
    assert "360983100201" in codes
    assert any(f["code"] == "T-GRID-A1" for f in layers["grids"])
    low = get(client, headers["t-operator"], "context", *tile_of(115.33, 28.38, 6))
    assert all(f["level"] <= 2 for f in low.get("regions", []))


def test_bad_tile_addresses_are_4xx(client, headers):
    h = headers["t-operator"]
    assert client.get("/tiles/devices/3/9/0.pbf", headers=h).status_code == 404
    assert client.get("/tiles/devices/23/0/0.pbf", headers=h).status_code == 422
    assert client.get("/tiles/secret/3/0/0.pbf", headers=h).status_code == 422
    assert client.get("/tiles/devices/3/0/0.pbf").status_code == 401
