"""The operator's alarm queue through the API: order, server counts, filters, search, bulk step, export."""

from __future__ import annotations

import csv
import io
import time

import pytest
from sqlalchemy import text

from ingest.alarms import AlarmIn, store_alarms
from ingest.events import emit_events
from tests.api.fixtures import device_id

pytestmark = pytest.mark.integration


def _raise_many(engine, dev, specs, lon=115.371, lat=28.3711):
    """Store alarms (kind, severity, seconds ago) from one device; returns their ids in order."""
    now = time.time()
    msgs = [f"q-{dev}-{i}-{time.time_ns()}" for i in range(len(specs))]
    with engine.begin() as conn:
        out = store_alarms(
            conn,
            [
                AlarmIn(dev, msg, kind, sev, now - ago, lon, lat)
                for msg, (kind, sev, ago) in zip(msgs, specs, strict=True)
            ],
        )
        emit_events(conn, out.events())
    by_msg = {a["msg_id"]: a["id"] for a in out.new}
    return [by_msg[m] for m in msgs]


@pytest.fixture(scope="module")
def queue(client, headers, engine):
    """A camera named for search in village A1 (东村, 筠阳街道) with alarms of mixed severity and age."""
    body = {
        "id": device_id(),
        "lon": 115.3721,
        "lat": 28.3721,
        "heading_deg": 90,
        "focal_mm": 4,
        "name": "队列测试杆 Q-pole",
    }
    r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
    assert r.status_code == 201, r.text
    dev = body["id"]
    ids = _raise_many(
        engine,
        dev,
        [("smoke", 3, 50), ("panic", 1, 10), ("intrusion", 2, 300), ("panic", 1, 200)],
    )
    return {"dev": dev, "ids": ids}


def _get(client, headers, **params):
    r = client.get(
        "/api/v1/alarms", headers=headers["t-operator"], params={"limit": 1000, **params}
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_default_order_is_severity_then_age(client, headers, queue):
    page = _get(client, headers, device_id=queue["dev"], state="open")
    got = [a["id"] for a in page["items"]]
    smoke, panic_new, intrusion, panic_old = queue["ids"]
    assert got == [panic_old, panic_new, intrusion, smoke]
    newest = [
        a["id"] for a in _get(client, headers, device_id=queue["dev"], order="newest")["items"]
    ]
    assert newest == [panic_new, smoke, panic_old, intrusion]


def test_counts_are_the_servers_not_the_page(client, headers, queue):
    page = _get(client, headers, device_id=queue["dev"], state="open", limit=1)
    assert len(page["items"]) == 1 and page["next_offset"] == 1
    c = page["counts"]
    assert c["total"] == 4
    assert c["severity"] == {"1": 2, "2": 1, "3": 1}
    assert c["state"] == {"new": 4}


def test_village_township_and_search(client, headers, queue):
    a = _get(client, headers, device_id=queue["dev"])["items"][0]
    assert a["village_name"] == "东村" and a["township_name"] == "筠阳街道"
    for q in ("队列测试", "q-pole", queue["dev"][:14], "东村"):
        ids = {x["id"] for x in _get(client, headers, q=q, state="open")["items"]}
        assert set(queue["ids"]) <= ids, q
    assert _get(client, headers, q="no such place 无此村")["items"] == []
    # LIKE wildcards are matched literally
    assert _get(client, headers, q="%")["items"] == []


def test_filters_kind_severity(client, headers, queue):
    page = _get(client, headers, device_id=queue["dev"], kind=["panic", "smoke"])
    assert {a["kind"] for a in page["items"]} == {"panic", "smoke"} and page["counts"]["total"] == 3
    page = _get(client, headers, device_id=queue["dev"], severity=[2, 3])
    assert sorted(a["severity"] for a in page["items"]) == [2, 3]
    bad = client.get("/api/v1/alarms", headers=headers["t-operator"], params={"severity": 7})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "severity"
    bad = client.get("/api/v1/alarms", headers=headers["t-operator"], params={"kind": "DROP;"})
    assert bad.status_code == 422


def test_bulk_acknowledge_with_one_note(client, headers, queue, engine):
    smoke, panic_new, intrusion, _ = queue["ids"]
    h = headers["t-operator"]
    assert client.post(f"/api/v1/alarms/{intrusion}/acknowledge", headers=h).status_code == 200
    r = client.post(
        "/api/v1/alarms/acknowledge",
        headers=h,
        json={"ids": [smoke, panic_new, intrusion, 999999999], "note": "一起事件 one incident"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["done"] == [smoke, panic_new]
    assert {f["id"]: f["code"] for f in out["failed"]} == {
        intrusion: "alarm_bad_transition",
        999999999: "alarm_not_found",
    }
    with engine.connect() as conn:
        notes = conn.execute(
            text(
                "SELECT alarm_id, actor, note FROM alarm_events WHERE alarm_id = ANY(:i) "
                "AND state = 'acknowledged' ORDER BY alarm_id"
            ),
            {"i": [smoke, panic_new]},
        ).all()
    assert [tuple(n) for n in notes] == [
        (smoke, "t-operator", "一起事件 one incident"),
        (panic_new, "t-operator", "一起事件 one incident"),
    ]
    assert (
        client.post(
            "/api/v1/alarms/acknowledge", headers=headers["t-auditor"], json={"ids": [smoke]}
        ).status_code
        == 403
    )
    assert client.post("/api/v1/alarms/acknowledge", headers=h, json={"ids": []}).status_code == 422


def test_history_export_csv_and_xlsx(client, headers, queue):
    from openpyxl import load_workbook

    h = headers["t-operator"]
    smoke = queue["ids"][0]
    client.post(f"/api/v1/alarms/{smoke}/acknowledge", headers=h)
    r = client.post(
        f"/api/v1/alarms/{smoke}/resolve", headers=h, json={"note": "=cmd|' /C calc'!A0"}
    )
    assert r.status_code == 200, r.text
    params = {"state": "closed", "device_id": queue["dev"]}
    r = client.get("/api/v1/alarms/export", headers=h, params={**params, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [int(x["id"]) for x in rows] == [smoke]
    assert rows[0]["village_name"] == "东村" and rows[0]["closed_by"] == "t-operator"
    assert "resolved t-operator" in rows[0]["trail"] and "=cmd" in rows[0]["trail"]
    r = client.get("/api/v1/alarms/export", headers=h, params={**params, "format": "xlsx"})
    assert r.status_code == 200 and r.content[:2] == b"PK"
    ws = load_workbook(io.BytesIO(r.content)).active
    table = list(ws.values)
    assert table[0][0] == "id" and table[1][0] == smoke and len(table) == 2
    trail = table[0].index("trail")
    assert "resolved t-operator" in table[1][trail]


def test_export_cell_guard():
    from api.alarm_export import cell

    assert cell("=1+1") == "'=1+1" and cell("@x") == "'@x" and cell("东村") == "东村"
    assert cell(None) == "" and cell(3) == 3


def test_faces_is_within_half_the_field_of_view():
    from api.routers.alarms import faces

    assert faces(10, 350, 60) is True and faces(45, 0, 60) is False
    assert faces(180, 0, 360) is True and faces(5, None, 60) is None


def test_nearest_cameras_are_not_called_covering(client, headers, queue):
    # the alarm is 1 m north-east of the queue camera, which faces east (90 deg): it covers it;
    # an alarm behind the camera is linked as nearest, with faces = False
    h = headers["t-operator"]
    aid = queue["ids"][2]
    d = client.get(f"/api/v1/alarms/{aid}", headers=h).json()
    rel = {c["device_id"]: (c["relation"], c["faces"]) for c in d["cameras"]}
    assert queue["dev"] in rel
    assert rel[queue["dev"]][0] == "nearest" and rel[queue["dev"]][1] is False


def test_a_ptz_camera_suggests_the_preset_that_sees_the_spot(client, headers, engine):
    """A PTZ camera with four presets (north, east, south, west at 12 mm): an alarm east of it
    names preset 2, one north preset 1; one north-east lies between the presets' sectors, so
    the camera does not cover it and suggests nothing."""
    body = {
        "id": device_id(),
        "lon": 115.385,
        "lat": 28.36,
        "ptz": True,
        "focal_mm": 4,
        "focal_max_mm": 20,
        "presets": [{"heading_deg": h, "focal_mm": 12} for h in (0, 90, 180, 270)],
        "name": "云台预置位测试",
    }
    r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
    assert r.status_code == 201, r.text
    dev = body["id"]
    metre_lon, metre_lat = 1 / 97_970, 1 / 110_900  # at 28.36 N
    (east,) = _raise_many(engine, dev, [("intrusion", 2, 3)], 115.385 + 40 * metre_lon, 28.36)
    (north,) = _raise_many(engine, dev, [("smoke", 2, 2)], 115.385, 28.36 + 40 * metre_lat)
    (between,) = _raise_many(
        engine, dev, [("tamper", 2, 1)], 115.385 + 28 * metre_lon, 28.36 + 28 * metre_lat
    )
    h = headers["t-operator"]

    def camera(aid):
        d = client.get(f"/api/v1/alarms/{aid}", headers=h)
        assert d.status_code == 200, d.text
        return {c["device_id"]: c for c in d.json()["cameras"]}[dev]

    c = camera(east)
    assert c["relation"] == "covers" and c["ptz"] is True
    assert c["preset"] == {"number": 2, "heading_deg": 90.0, "focal_mm": 12.0}
    assert camera(north)["preset"]["number"] == 1
    c = camera(between)
    assert c["relation"] == "nearest" and c["preset"] is None


def test_covering_preset_prefers_the_most_central():
    from geo.coverage import covering_preset
    from hardware.sector import Preset

    wide = Preset(heading_deg=0, half_angle_deg=45, radius_m=50)
    narrow = Preset(heading_deg=30, half_angle_deg=10, radius_m=150)
    assert covering_preset([wide, narrow], 28, 40) == 2  # central in the narrow one
    assert covering_preset([wide, narrow], 5, 40) == 1
    assert covering_preset([wide, narrow], 28, 120) == 2  # beyond the wide one's reach
    assert covering_preset([wide, narrow], 90, 10) is None
    assert covering_preset([wide], 350, 10) == 1  # across north
