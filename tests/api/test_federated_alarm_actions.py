"""An operator's action on an alarm another hub federated here (a county's, at its city) is sent
down to that hub instead of changing the replicated row, which the county would overwrite."""

from __future__ import annotations

import json
import threading

from sqlalchemy import text

from tests.api.test_alarms import _camera, _raise


def test_acting_on_a_county_alarm_sends_the_change_down(client, headers, engine) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from federation.bridge import provision_city_account
    from gridwatch.settings import get_settings

    settings = get_settings()
    cam = _camera(client, headers, 115.372, 28.372)
    alarm = _raise(engine, cam, "intrusion", 2)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alarms SET origin = 'county_x' WHERE id = :id"), {"id": alarm})

    # What the county's bridge would receive: its own account at this (city) broker.
    password = provision_city_account(settings, "county_x")
    got: list[dict] = []
    arrived, subscribed = threading.Event(), threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="county-x-bridge-probe")
    sub.username_pw_set("fed-county_x", password)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("gw/fed/county_x/down/#", qos=1)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda c, u, m: (got.append(json.loads(m.payload)), arrived.set())
    sub.connect(*settings.mqtt_endpoint())
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        r = client.post(
            f"/api/v1/alarms/{alarm}/acknowledge",
            headers=headers["t-operator"],
            json={"note": "seen on the city wall"},
        )
        assert r.status_code == 202, r.text
        assert r.json()["state"] == "new"  # unchanged here until the county's row comes back
        assert arrived.wait(10)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert got == [
        {
            "alarm_id": alarm,
            "state": "acknowledged",
            "by": "t-operator",
            "note": "seen on the city wall",
        }
    ]
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT state, acknowledged_by FROM alarms WHERE id = :id"), {"id": alarm}
        ).one()
        trail = conn.execute(
            text("SELECT count(*) FROM alarm_events WHERE alarm_id = :id AND state <> 'new'"),
            {"id": alarm},
        ).scalar()
    assert tuple(row) == ("new", None) and trail == 0

    # Acknowledging in bulk does not touch it either: listed as failed, with where it belongs.
    r = client.post(
        "/api/v1/alarms/acknowledge", headers=headers["t-operator"], json={"ids": [alarm]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["done"] == [] and r.json()["failed"][0]["code"] == "alarm_elsewhere"
    assert "county_x" in r.json()["failed"][0]["reason"]

    # The hub's own alarms still change here at once.
    own = _raise(engine, cam, "smoke", 2)
    r = client.post(f"/api/v1/alarms/{own}/acknowledge", headers=headers["t-operator"])
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"

    # The queue and the detail say which hub an alarm comes from; the hub's own say nothing.
    r = client.get(f"/api/v1/alarms?device_id={cam}&limit=50", headers=headers["t-operator"])
    assert r.status_code == 200, r.text
    assert {a["id"]: a["from_hub"] for a in r.json()["items"]} == {alarm: "county_x", own: None}
    r = client.get(f"/api/v1/alarms/{alarm}", headers=headers["t-operator"])
    assert r.json()["from_hub"] == "county_x"
    # So do devices (a county's device at its city).
    r = client.get(f"/api/v1/devices/{cam}", headers=headers["t-operator"])
    assert r.json()["from_hub"] is None
    with engine.begin() as conn:
        conn.execute(text("UPDATE devices SET origin = 'county_x' WHERE id = :id"), {"id": cam})
    try:
        r = client.get(f"/api/v1/devices/{cam}", headers=headers["t-operator"])
        assert r.json()["from_hub"] == "county_x"
        r = client.get(f"/api/v1/devices?q={cam}", headers=headers["t-operator"])
        assert [d["from_hub"] for d in r.json()["items"]] == ["county_x"]
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE devices SET origin = 'local' WHERE id = :id"), {"id": cam})
