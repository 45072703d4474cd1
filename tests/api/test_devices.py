"""Devices through the API: register (WGS 84 / GCJ-02), preview, move, retire, region checks, GeoJSON."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hardware.crs import wgs84_to_gcj02
from tests.api.fixtures import COUNTY_B, VILLAGE_A1, device_id

CAM = {
    "heading_deg": 90,
    "focal_mm": 4,
    "sensor_format": "1/2.8",
    "resolution_w": 1920,
    "resolution_h": 1080,
    "mount_height_m": 6,
}


def register(client, headers, **fields):
    body = {"id": device_id(), "lon": 115.32, "lat": 28.38, **CAM}
    body.update(fields)
    return body, client.post("/api/v1/devices", headers=headers["t-installer"], json=body)


def test_register_finds_region_and_grid_by_containment(client, headers, places, engine):
    body, r = register(client, headers, name="东村口 east gate")
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["region_code"] == VILLAGE_A1
    assert out["grid_id"] == places["grid_id"]
    assert out["fov_geojson"]["type"] == "Polygon" and out["range_m"] > 0
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT region_code, grid_id, registered_by, ST_X(position) FROM devices WHERE id = :i"
            ),
            {"i": body["id"]},
        ).one()
        log = conn.execute(
            text("SELECT actor, action FROM audit_log WHERE entity = 'device' AND entity_id = :i"),
            {"i": body["id"]},
        ).all()
    assert row[0] == VILLAGE_A1 and row[1] == places["grid_id"] and row[2] == "t-installer"
    assert row[3] == pytest.approx(115.32)
    assert ("t-installer", "device.register") in [tuple(x) for x in log]
    # the same id again is a conflict, not a second row
    assert (
        client.post("/api/v1/devices", headers=headers["t-installer"], json=body).status_code == 409
    )


def test_gcj02_position_is_converted_to_wgs84(client, headers, engine):
    glon, glat = wgs84_to_gcj02(115.36, 28.40)
    body, r = register(client, headers, lon=glon, lat=glat, crs="gcj02")
    assert r.status_code == 201, r.text
    assert r.json()["lon"] == pytest.approx(115.36, abs=1e-6)
    assert r.json()["lat"] == pytest.approx(28.40, abs=1e-6)


def test_position_outside_the_ids_division_is_422_with_field(client, headers, places):
    # an id of county A placed in county B's box
    _, r = register(client, headers, lon=114.95, lat=27.80)
    assert r.status_code == 422
    d = r.json()["detail"][0]
    assert d["field"] == "lon" and "outside" in d["reason"] and "360983" in d["reason"]
    # nowhere at all
    _, r = register(client, headers, lon=100.0, lat=40.0)
    assert r.status_code == 422 and "outside every loaded region" in r.json()["detail"][0]["reason"]


def test_installer_outside_assigned_region_is_403(client, headers, places):
    body = {"id": device_id(COUNTY_B), "lon": 114.95, "lat": 27.80, **CAM}
    r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
    assert r.status_code == 403
    assert "360983100000" in r.json()["detail"]
    ok = client.post("/api/v1/devices", headers=headers["t-installer-b"], json=body)
    assert ok.status_code == 201, ok.text
    # and the first installer may not change it either
    r = client.post(f"/api/v1/devices/{body['id']}/retire", headers=headers["t-installer"], json={})
    assert r.status_code == 403


def test_operator_cannot_register(client, headers):
    body = {"id": device_id(), "lon": 115.32, "lat": 28.38}
    r = client.post("/api/v1/devices", headers=headers["t-operator"], json=body)
    assert r.status_code == 403


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"id": "123"}, "id"),
        ({"id": "36098300001995000001"}, "id"),  # type code 199 is not assigned
        ({"crs": "mercator"}, "crs"),
        ({"lat": 95}, "lat"),
        ({"heading_deg": 400}, "heading_deg"),
        ({"focal_mm": -2}, "focal_mm"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_registrations_are_422_with_field(client, headers, patch, field):
    body = {"id": device_id(), "lon": 115.32, "lat": 28.38, **CAM, **patch}
    r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
    assert r.status_code == 422, r.text
    fields = [d["field"] for d in r.json()["detail"]]
    assert field in fields


def test_field_errors_say_what_is_wrong(client, headers):
    """Errors an installer can act on: the digit count, a lon/lat swap, an unassigned type."""
    base = {"id": device_id(), "lon": 115.32, "lat": 28.38, **CAM}

    def reason(patch: dict) -> str:
        r = client.post("/api/v1/devices", headers=headers["t-installer"], json={**base, **patch})
        assert r.status_code == 422, r.text
        return r.json()["detail"][0]["reason"]

    assert "has 19 digits" in reason({"id": base["id"][:19]})
    assert "swapped" in reason({"lon": 28.38, "lat": 115.32})
    assert "199" in reason({"id": "36098300001995000001"})
    confirmed = {**base, "id": device_id(type_code="199"), "accept_unassigned_type": True}
    r = client.post("/api/v1/devices", headers=headers["t-installer"], json=confirmed)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "other"


def test_preview_saves_nothing_and_reports_rules(client, headers, engine):
    dev = device_id()
    body = {"id": dev, "lon": 115.33, "lat": 28.3794, **CAM, "heading_deg": 0}
    r = client.post("/api/v1/devices/preview", headers=headers["t-installer"], json=body)
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["region_code"] == VILLAGE_A1 and p["sector"]["type"] == "Polygon"
    rules = {x["rule"]: x for x in p["rules"]}
    assert rules["village_monitoring_points"]["target"] == 5
    assert rules["village_monitoring_points"]["after"] >= 1
    assert "key_sites_watched" in rules  # the square at 115.33, 28.38 is in front of it
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM devices WHERE id = :i"), {"i": dev}).scalar()
            == 0
        )


def test_move_update_and_retire(client, headers, engine):
    body, r = register(client, headers)
    assert r.status_code == 201
    dev = body["id"]
    r = client.post(
        f"/api/v1/devices/{dev}/move",
        headers=headers["t-installer"],
        json={"lon": 115.35, "lat": 28.45},
    )
    assert r.status_code == 200, r.text
    assert r.json()["region_code"] == "360983100202" and r.json()["action"] == "device.move"
    # a move out of the id's county is refused, and nothing changes
    r = client.post(
        f"/api/v1/devices/{dev}/move",
        headers=headers["t-installer"],
        json={"lon": 114.95, "lat": 27.80},
    )
    assert r.status_code == 422
    r = client.patch(
        f"/api/v1/devices/{dev}",
        headers=headers["t-installer"],
        json={"heading_deg": 180, "name": "turned"},
    )
    assert r.status_code == 200, r.text
    got = client.get(f"/api/v1/devices/{dev}", headers=headers["t-operator"]).json()
    assert (
        got["heading_deg"] == 180
        and got["name"] == "turned"
        and got["region_code"] == "360983100202"
    )
    assert (
        client.patch(f"/api/v1/devices/{dev}", headers=headers["t-installer"], json={}).status_code
        == 422
    )
    r = client.post(
        f"/api/v1/devices/{dev}/retire",
        headers=headers["t-installer"],
        json={"reason": "pole removed"},
    )
    assert r.status_code == 200
    assert (
        client.post(
            f"/api/v1/devices/{dev}/retire", headers=headers["t-installer"], json={}
        ).status_code
        == 409
    )
    assert (
        client.post(
            "/api/v1/devices/36098300001325999999/retire", headers=headers["t-installer"], json={}
        ).status_code
        == 404
    )
    with engine.connect() as conn:
        actions = [
            r[0]
            for r in conn.execute(
                text("SELECT action FROM audit_log WHERE entity_id = :i ORDER BY id"), {"i": dev}
            )
        ]
    assert actions[:2] == ["device.register", "device.move"] and "device.retire" in actions


def test_geojson_bbox_and_paging(client, headers):
    for i in range(3):
        assert register(client, headers, lon=115.301 + i * 0.001, lat=28.351)[1].status_code == 201
    h = headers["t-operator"]
    r = client.get(
        "/api/v1/geo/devices",
        headers=h,
        params={"bbox": "115.300,28.350,115.305,28.355", "limit": 2},
    )
    assert r.status_code == 200
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and fc["number_returned"] == 2 and fc["next_cursor"]
    assert all(f["geometry"]["type"] == "Point" for f in fc["features"])
    rest = client.get(
        "/api/v1/geo/devices",
        headers=h,
        params={"bbox": "115.300,28.350,115.305,28.355", "after": fc["next_cursor"]},
    ).json()
    ids = [f["id"] for f in fc["features"]] + [f["id"] for f in rest["features"]]
    assert len(ids) == len(set(ids)) >= 3
    for bad in ("1,2,3", "a,b,c,d", "116,28,115,29", "0,0,100,80", "-200,0,0,1"):
        r = client.get("/api/v1/geo/devices", headers=h, params={"bbox": bad})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "bbox", bad
    for params in ({"limit": 0}, {"offset": -1}, {"limit": 100000}):
        assert client.get("/api/v1/geo/devices", headers=h, params=params).status_code == 422
    cov = client.get(
        "/api/v1/geo/coverage", headers=h, params={"bbox": "115.3,28.35,115.4,28.5"}
    ).json()
    assert cov["features"] and cov["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_summary_and_moving_filter_agree_with_the_list(client, headers):
    """The summary's counts and the moving/fixed split are the same devices the list shows."""
    h = headers["t-operator"]
    box = {"bbox": "115.300,28.350,115.305,28.355"}
    assert register(client, headers, lon=115.3015, lat=28.3515)[1].status_code == 201
    summary = client.get("/api/v1/devices/summary", headers=h, params=box)
    assert summary.status_code == 200, summary.text
    counts = summary.json()
    assert counts["total"] == counts["online"] + counts["offline"] + counts["unknown"] >= 1
    everything = client.get("/api/v1/geo/devices", headers=h, params={**box, "limit": 1000})
    fixed = client.get("/api/v1/geo/devices", headers=h, params={**box, "moving": False})
    moving = client.get("/api/v1/geo/devices", headers=h, params={**box, "moving": True})
    assert {r.status_code for r in (everything, fixed, moving)} == {200}
    ids = {f["id"] for f in everything.json()["features"]}
    assert len(ids) == counts["total"]
    split = [{f["id"] for f in r.json()["features"]} for r in (fixed, moving)]
    assert split[0] | split[1] == ids and not split[0] & split[1]


def test_summary_follows_a_device_through_its_life(client, headers, engine):
    """The summary counts from device_tally (migration 0014), which triggers keep equal to
    devices: it agrees with a count on devices itself while a device is registered, goes offline,
    reports positions of its own elsewhere, is retired and deleted, and a heartbeat or a new
    position of a moving device needs no change to the tally."""
    h = headers["t-operator"]  # no region of their own: the whole hub, as the count below
    here, there = (115.3210, 28.3810, 115.3230, 28.3830), (115.3610, 28.3410, 115.3630, 28.3430)

    def agreed(box: tuple[float, ...]) -> int:
        """The summary of the box, checked against devices; its total."""
        bbox = ",".join(f"{v:.4f}" for v in box)
        got = client.get("/api/v1/devices/summary", headers=h, params={"bbox": bbox})
        assert got.status_code == 200, got.text
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT kind, status, count(*) FROM devices WHERE retired_at IS NULL "
                    "AND coalesce(last_position, position) && ST_MakeEnvelope(:w, :s, :e, :n, 4326) "
                    "GROUP BY kind, status"
                ),
                dict(zip("wsen", box, strict=True)),
            ).all()
        want = {"total": 0, "online": 0, "offline": 0, "unknown": 0, "by_kind": {}}
        for kind, status, n in rows:
            want["total"] += n
            want[status] += n
            want["by_kind"][kind] = want["by_kind"].get(kind, 0) + n
        assert got.json() == want
        return want["total"]

    def change(sql: str, **values) -> None:
        with engine.begin() as conn:
            conn.execute(text(sql), {"i": body["id"], **values})

    before_here, before_there = agreed(here), agreed(there)
    body, r = register(client, headers, lon=115.322, lat=28.382)
    assert r.status_code == 201, r.text
    assert agreed(here) == before_here + 1
    change("UPDATE devices SET status = 'offline' WHERE id = :i")
    assert agreed(here) == before_here + 1
    change("UPDATE devices SET last_seen = now(), status = 'online' WHERE id = :i")  # heartbeat
    agreed(here)
    # it reports a position of its own (as ingest writes it), then another: counted where it is
    move = "UPDATE devices SET last_position = ST_Point(:x, :y, 4326) WHERE id = :i"
    change(move, x=115.362, y=28.342)
    assert (agreed(here), agreed(there)) == (before_here, before_there + 1)
    change(move, x=115.322, y=28.382)
    assert (agreed(here), agreed(there)) == (before_here + 1, before_there)
    change("UPDATE devices SET retired_at = now() WHERE id = :i")
    assert agreed(here) == before_here
    change("UPDATE devices SET retired_at = NULL, last_position = NULL WHERE id = :i")
    assert agreed(here) == before_here + 1
    change("DELETE FROM devices WHERE id = :i")
    assert agreed(here) == before_here


def test_installer_sees_only_own_regions(client, headers):
    mine = client.get(
        "/api/v1/devices", headers=headers["t-installer-b"], params={"limit": 1000}
    ).json()["items"]
    assert mine and all(d["region_code"].startswith("360502") for d in mine)


def test_mqtt_credentials_for_the_installer(client, headers, engine):
    body, r = register(client, headers)
    shown = client.get(
        f"/api/v1/devices/{body['id']}/mqtt-credentials", headers=headers["t-installer"]
    )
    assert shown.status_code == 200 and shown.json()["password"] is None  # shown once only
    creds = client.post(
        f"/api/v1/devices/{body['id']}/mqtt-credentials", headers=headers["t-installer"]
    )
    assert creds.status_code == 200
    c = creds.json()
    assert c["username"] == body["id"] and len(c["password"]) == 24
    assert c["topics"]["heartbeat"] == f"gw/v1/{body['id']}/heartbeat"
    assert (
        client.get(
            f"/api/v1/devices/{body['id']}/mqtt-credentials", headers=headers["t-installer-b"]
        ).status_code
        == 403
    )


def test_new_devices_get_tally_rows_and_a_stale_one_is_overwritten(engine):
    """device_tally_added (migration 0017) inserts the statement's new devices plainly; a tally
    row already there for one of their ids (left by hand, or a sync gone wrong) is overwritten as
    the 0014 upsert did, instead of failing the devices insert."""
    ids = [device_id() for _ in range(3)]
    rows = "SELECT id, kind, status, region_code, moving FROM device_tally WHERE id = ANY(:ids) ORDER BY id"
    with engine.connect() as c, c.begin() as tx:
        c.execute(
            text(
                "INSERT INTO device_tally (id, kind, status, moving) VALUES (:i, 'x', 'online', true)"
            ),
            {"i": ids[1]},
        )
        c.execute(
            text(
                "INSERT INTO devices (id, type_code, kind, position, region_code) "
                "SELECT i, '132', 'ip_camera', ST_Point(115.3, 28.3, 4326), :r FROM unnest(CAST(:ids AS text[])) i"
            ),
            {"ids": ids, "r": VILLAGE_A1},
        )
        got = [tuple(r) for r in c.execute(text(rows), {"ids": ids}).all()]
        tx.rollback()
    assert got == [(i, "ip_camera", "unknown", VILLAGE_A1, False) for i in sorted(ids)]
