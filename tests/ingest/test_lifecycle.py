"""Alarm lifecycle, presence sweeps and online rate, and the event bus helpers."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest import alarms
from ingest.events import emit_event, event_messages_by_id, events_by_id, events_since
from ingest.presence import online_rate, sweep
from ingest.store import Message


def raise_alarm(store, device_id: str, msg_id: str = "l-1") -> int:
    payload = {"msg_id": msg_id, "ts": time.time(), "kind": "panic", "severity": 1}
    store.process([Message(f"gw/v1/{device_id}/alarm", json.dumps(payload).encode(), 1)])
    return store.conn.execute(
        "SELECT id FROM alarms WHERE device_id = %s AND msg_id = %s", (device_id, msg_id)
    ).fetchone()[0]


def test_full_lifecycle_with_trail(store, make_device, pg) -> None:
    aid = raise_alarm(store, make_device("alarm_input"))
    alarms.acknowledge(pg, aid, "op-li", "seen on camera")
    alarms.dispatch(pg, aid, "op-li", "unit 3 sent")
    alarms.resolve(pg, aid, "op-wang", "nothing found")
    pg.commit()
    trail = alarms.history(pg, aid)
    assert [(s["state"], s["actor"], s["note"]) for s in trail[1:]] == [
        ("acknowledged", "op-li", "seen on camera"),
        ("dispatched", "op-li", "unit 3 sent"),
        ("resolved", "op-wang", "nothing found"),
    ]
    row = pg.execute(
        "SELECT state, acknowledged_by, dispatched_by, closed_by, closed_at IS NOT NULL "
        "FROM alarms WHERE id = %s",
        (aid,),
    ).fetchone()
    assert row == ("resolved", "op-li", "op-li", "op-wang", True)


def test_invalid_transitions_are_refused_clearly(store, make_device, pg) -> None:
    aid = raise_alarm(store, make_device("alarm_input"))
    with pytest.raises(
        alarms.AlarmTransitionError,
        match=r"is new: it cannot go to dispatched \(allowed next: acknowledged\)",
    ):
        alarms.dispatch(pg, aid, "op")
    pg.rollback()
    alarms.acknowledge(pg, aid, "op")
    with pytest.raises(alarms.AlarmTransitionError, match="already acknowledged"):
        alarms.acknowledge(pg, aid, "op")
    pg.rollback()
    alarms.acknowledge(pg, aid, "op")
    alarms.mark_false(pg, aid, "op", "cat")
    pg.commit()
    with pytest.raises(alarms.AlarmTransitionError, match="closed alarm cannot change"):
        alarms.resolve(pg, aid, "op")
    pg.rollback()
    with pytest.raises(alarms.AlarmNotFound):
        alarms.acknowledge(pg, 999_999_999, "op")
    pg.rollback()
    with pytest.raises(ValueError, match="actor"):
        alarms.acknowledge(pg, aid, " ")


def test_lifecycle_works_on_sqlalchemy_connection(store, make_device, engine) -> None:
    aid = raise_alarm(store, make_device("alarm_input"))
    with engine.begin() as conn:
        out = alarms.acknowledge(conn, aid, "api-user", "via API")
        assert out["state"] == "acknowledged"
        eid = emit_event(conn, "device.status", "360121000000", {"x": 1})
        assert eid > 0
    with engine.connect() as conn:
        got = events_since(conn, eid - 1)
    assert got[0].id == eid and got[0].payload == {"x": 1}


def test_events_since_filters_region_and_notifies(db_url, pg) -> None:
    listener = psycopg.connect(
        db_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    )
    listener.execute("LISTEN gw_events")
    start = pg.execute("SELECT coalesce(max(id), 0) FROM hub_events").fetchone()[0]
    a = emit_event(pg, "alarm.new", "360121105000", {"n": 1})
    b = emit_event(pg, "alarm.new", "361000000000", {"n": 2})
    c = emit_event(pg, "device.status", None, {"n": 3})
    assert not list(listener.notifies(timeout=0.2))  # nothing before commit
    pg.commit()
    ids = [int(n.payload) for n in listener.notifies(timeout=2, stop_after=3)]
    assert ids == [a, b, c]
    mine = [e.id for e in events_since(pg, start, region_code="360121000000") if e.id in (a, b, c)]
    assert mine == [a, c]
    with pytest.raises(ValueError, match="event kind"):
        emit_event(pg, "alarm.exploded", None, {})
    listener.close()


def test_sweep_marks_silent_devices_offline(store, make_device, pg) -> None:
    quick = make_device("smoke_detector", heartbeat_s=1)
    slow = make_device("ip_camera", heartbeat_s=3600)
    store.process(
        [
            Message(f"gw/v1/{d}/heartbeat", json.dumps({"ts": time.time()}).encode())
            for d in (quick, slow)
        ]
    )
    # pretend both were last heard from 10 s ago
    pg.execute(
        "UPDATE devices SET last_seen = now() - interval '10 seconds' WHERE id = ANY(%s)",
        ([quick, slow],),
    )
    pg.commit()
    gone = sweep(pg, 3, {"smoke_detector": 20})  # per-kind override keeps `quick` online
    pg.commit()
    assert quick not in [t.device_id for t in gone]
    gone = sweep(pg, 3, {})
    pg.commit()
    assert [t.device_id for t in gone if t.device_id in (quick, slow)] == [quick]
    end, reason = pg.execute(
        "SELECT ended_at - started_at < interval '1 minute', end_reason FROM device_presence "
        "WHERE device_id = %s",
        (quick,),
    ).fetchone()
    assert reason == "missed_heartbeats" and end is True


def test_online_rate_device_and_region(make_device, pg) -> None:
    region = "360121103000"
    d1 = make_device("ip_camera", region_code=None)
    d2 = make_device("ip_camera", region_code=None)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    pg.execute(
        "UPDATE devices SET registered_at = %s, region_code = NULL WHERE id = ANY(%s)",
        (t0, [d1, d2]),
    )
    pg.execute(
        "INSERT INTO regions (code, level, name) VALUES ('360121103000', 4, 'test township') "
        "ON CONFLICT DO NOTHING"
    )
    pg.execute("UPDATE devices SET region_code = %s WHERE id = ANY(%s)", (region, [d1, d2]))
    # d1 online 6 of 10 hours, d2 online 10 of 10 hours (closed) -> 16/20
    pg.execute(
        "INSERT INTO device_presence (device_id, started_at, ended_at) VALUES "
        "(%s, %s, %s), (%s, %s, %s), (%s, %s, %s)",
        (
            d1,
            t0,
            t0 + timedelta(hours=2),
            d1,
            t0 + timedelta(hours=6),
            t0 + timedelta(hours=10),
            d2,
            t0 - timedelta(hours=5),
            t0 + timedelta(hours=20),
        ),
    )
    pg.commit()
    r1 = online_rate(pg, d1, t0, t0 + timedelta(hours=10))
    assert r1.rate == pytest.approx(0.6) and r1.devices == 1
    both = online_rate(pg, region, t0, t0 + timedelta(hours=10))
    assert both.rate == pytest.approx(0.8) and both.devices == 2
    county = online_rate(pg, "360121000000", t0, t0 + timedelta(hours=10))
    assert county.devices >= 2
    with pytest.raises(ValueError, match="not after start"):
        online_rate(pg, d1, t0, t0)
    with pytest.raises(ValueError, match="grid"):
        online_rate(pg, "no-such-grid", t0, t0 + timedelta(hours=1))


def test_sweep_limit_spreads_a_wave(make_device, pg) -> None:
    devices = [make_device("alarm_input", heartbeat_s=1) for _ in range(3)]
    pg.execute(
        "UPDATE devices SET status = 'online', last_seen = now() - interval '1 hour' "
        "WHERE id = ANY(%s)",
        (devices,),
    )
    # every other online device of this test database just spoke, so only ours are due
    pg.execute(
        "UPDATE devices SET last_seen = now() WHERE status = 'online' AND NOT id = ANY(%s)",
        (devices,),
    )
    pg.commit()
    first = sweep(pg, 3, {}, limit=2)
    pg.commit()
    second = sweep(pg, 3, {}, limit=2)
    pg.commit()
    assert len(first) == 2 and len(second) == 1
    assert sorted(t.device_id for t in first + second) == sorted(devices)


def test_relay_messages_match_the_events(pg) -> None:
    payloads = [
        {"device_id": "x", "lon": 116.39, "lat": 39.9, "note": '杭州 "quoted"', "n": [1, None]},
        {},
        {"big": 2**70, "nested": {"a": {"b": True}}},
    ]
    ids = [emit_event(pg, "device.position", "360121105000", p) for p in payloads]
    ids.append(emit_event(pg, "device.status", None, {"status": "online"}))
    pg.commit()
    relayed = [json.loads(m) for m in event_messages_by_id(pg, ids)]
    assert relayed == [e.to_json() for e in events_by_id(pg, ids)]
    assert [r["payload"] for r in relayed[:3]] == payloads
