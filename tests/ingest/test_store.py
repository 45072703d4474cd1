"""The batch store against the real PostGIS: presence, alarms exactly once, positions, geofences,
analytics, dead letters, pending devices and the event bus."""

from __future__ import annotations

import json
import time

import pytest

from ingest.events import events_since
from ingest.store import Message


def msg(device_id: str, suffix: str, payload: dict | bytes, qos: int = 1, retain: bool = False):
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Message(f"gw/v1/{device_id}/{suffix}", raw, qos, 1, retain)


def alarm(msg_id: str, ts: float, kind: str = "intrusion", severity: int = 2, **extra) -> dict:
    return {"msg_id": msg_id, "ts": ts, "kind": kind, "severity": severity, **extra}


def last_event_id(pg) -> int:
    return pg.execute("SELECT coalesce(max(id), 0) FROM hub_events").fetchone()[0]


def test_heartbeats_make_devices_online_with_one_interval(store, make_device, pg) -> None:
    a, b = make_device(), make_device()
    before = last_event_id(pg)
    now = time.time()
    store.process([msg(a, "heartbeat", {"ts": now}), msg(b, "heartbeat", {"ts": now})])
    store.process([msg(a, "heartbeat", {"ts": now + 1})])
    rows = pg.execute(
        "SELECT id, status, last_seen IS NOT NULL FROM devices WHERE id = ANY(%s) ORDER BY id",
        ([a, b],),
    ).fetchall()
    assert [r[1:] for r in rows] == [("online", True), ("online", True)]
    intervals = pg.execute(
        "SELECT device_id, count(*) FROM device_presence WHERE device_id = ANY(%s) "
        "AND ended_at IS NULL GROUP BY device_id",
        ([a, b],),
    ).fetchall()
    assert sorted(n for _, n in intervals) == [1, 1]
    status_events = [e for e in events_since(pg, before) if e.kind == "device.status"]
    assert sorted(e.payload["device_id"] for e in status_events) == sorted([a, b])


def test_last_will_closes_interval(store, make_device, pg) -> None:
    d = make_device()
    store.process([msg(d, "heartbeat", {"ts": time.time()})])
    store.process([msg(d, "state", b"offline", retain=True)])
    status, reason = pg.execute(
        "SELECT d.status, p.end_reason FROM devices d JOIN device_presence p ON p.device_id = d.id "
        "WHERE d.id = %s",
        (d,),
    ).fetchone()
    assert (status, reason) == ("offline", "last_will")
    # A retained "online" (old news on subscribe) does not reopen it; a live one does.
    store.process([msg(d, "state", b"online", retain=True)])
    assert pg.execute("SELECT status FROM devices WHERE id = %s", (d,)).fetchone()[0] == "offline"
    store.process([msg(d, "state", b"online")])
    n = pg.execute("SELECT count(*) FROM device_presence WHERE device_id = %s", (d,)).fetchone()[0]
    assert n == 2


def test_fresh_store_trusts_recent_last_seen(store, make_device, pg) -> None:
    """A (re)started worker does not re-write every live device it hears from at once: a device
    the database has online with a fresh last_seen is left alone, one that is offline there or
    whose last_seen is older than its flush interval is written (and its transition recorded)."""
    live, gone, stale = make_device(), make_device(), make_device()
    pg.execute("UPDATE devices SET status = 'online', last_seen = now() WHERE id = %s", (live,))
    pg.execute("UPDATE devices SET status = 'offline', last_seen = now() WHERE id = %s", (gone,))
    pg.execute(
        "UPDATE devices SET status = 'online', last_seen = now() - interval '1 hour' WHERE id = %s",
        (stale,),
    )
    pg.commit()
    before = pg.execute("SELECT last_seen FROM devices WHERE id = %s", (live,)).fetchone()[0]
    now = time.time()
    res = store.process([msg(d, "heartbeat", {"ts": now}) for d in (live, gone, stale)])
    assert res.counts["presence_writes"] == 2
    rows = dict(
        pg.execute(
            "SELECT id, last_seen FROM devices WHERE id = ANY(%s)", ([live, gone, stale],)
        ).fetchall()
    )
    assert rows[live] == before
    assert rows[stale] > before and rows[gone] >= before
    assert pg.execute("SELECT status FROM devices WHERE id = %s", (gone,)).fetchone()[0] == "online"
    # The intervals differ per device but stay within [0.5, 1) x min(flush, heartbeat).
    spans = [store.flush_interval(f"{i:020d}", 60) for i in range(200)]
    assert all(0.5 * 10 <= s < 10 for s in spans) and len({round(s, 3) for s in spans}) > 50


def test_alarm_redelivery_is_harmless(store, make_device, pg) -> None:
    d = make_device()
    ts = time.time()
    m = msg(d, "alarm", alarm("a-1", ts))
    r1 = store.process([m, m])
    r2 = store.process([m])
    assert r1.counts["alarms_new"] == 1 and r1.counts["alarms_duplicate"] == 1
    assert r2.counts["alarms_duplicate"] == 1
    rows = pg.execute(
        "SELECT repeat_count, state FROM alarms WHERE device_id = %s", (d,)
    ).fetchall()
    assert rows == [(1, "new")]
    trail = pg.execute(
        "SELECT e.state, e.actor FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id "
        "WHERE a.device_id = %s",
        (d,),
    ).fetchall()
    assert trail == [("new", f"device:{d}")]


def test_repeats_merge_within_window_only(store, make_device, pg, cfg) -> None:
    d = make_device()
    ts = time.time() - 600
    store.process(
        [
            msg(d, "alarm", alarm("r-1", ts, severity=3)),
            msg(d, "alarm", alarm("r-2", ts + 10, severity=2)),
        ]
    )
    store.process([msg(d, "alarm", alarm("r-3", ts + 20, severity=3))])
    # outside the window: a new alarm; another kind: a new alarm
    store.process([msg(d, "alarm", alarm("r-4", ts + 20 + cfg.alarm_merge_window_s + 1))])
    store.process([msg(d, "alarm", alarm("r-5", ts + 21, kind="smoke"))])
    # redelivery of a merged message does not count again
    store.process([msg(d, "alarm", alarm("r-2", ts + 10, severity=2))])
    rows = pg.execute(
        "SELECT kind, repeat_count, severity, extract(epoch FROM last_raised_at - raised_at) "
        "FROM alarms WHERE device_id = %s ORDER BY id",
        (d,),
    ).fetchall()
    assert [(k, n, s, round(float(span))) for k, n, s, span in rows] == [
        ("intrusion", 3, 2, 20),
        ("intrusion", 1, 2, 0),
        ("smoke", 1, 2, 0),
    ]
    linked = pg.execute(
        "SELECT count(*) FROM alarm_messages WHERE device_id = %s AND alarm_id IS NOT NULL", (d,)
    ).fetchone()[0]
    assert linked == 5


def test_closed_alarm_is_not_merged_into(store, make_device, pg) -> None:
    from ingest.alarms import acknowledge, resolve

    d = make_device()
    ts = time.time()
    store.process([msg(d, "alarm", alarm("c-1", ts))])
    aid = pg.execute("SELECT id FROM alarms WHERE device_id = %s", (d,)).fetchone()[0]
    acknowledge(pg, aid, "op1")
    resolve(pg, aid, "op1", "checked")
    pg.commit()
    store.process([msg(d, "alarm", alarm("c-2", ts + 5))])
    assert pg.execute("SELECT count(*) FROM alarms WHERE device_id = %s", (d,)).fetchone()[0] == 2


def test_alarm_links_covering_camera_first_then_nearest(store, make_device, pg) -> None:
    # camera A looks east over a 0.002-degree box; camera B nearby without a sector
    lon, lat = 116.5, 29.1
    fov = f"POLYGON(({lon} {lat}, {lon + 0.003} {lat - 0.001}, {lon + 0.003} {lat + 0.001}, {lon} {lat}))"
    cam_a = make_device("ip_camera", lon, lat, fov_wkt=fov)
    cam_b = make_device("ip_camera", lon + 0.0025, lat + 0.0012)
    sensor = make_device("alarm_input", lon + 0.002, lat)
    before = last_event_id(pg)
    store.process([msg(sensor, "alarm", alarm("cam-1", time.time()))])
    links = pg.execute(
        "SELECT c.device_id, c.relation, c.rank FROM alarm_cameras c JOIN alarms a "
        "ON a.id = c.alarm_id WHERE a.device_id = %s ORDER BY c.rank",
        (sensor,),
    ).fetchall()
    assert links == [(cam_a, "covers", 1)]
    new = [e for e in events_since(pg, before) if e.kind == "alarm.new"]
    assert new[0].payload["cameras"][0]["device_id"] == cam_a
    assert abs(new[0].payload["lon"] - (lon + 0.002)) < 1e-9  # defaulted to device position
    # outside every sector: the nearest cameras within the radius, nearest first
    far_sensor = make_device("alarm_input", lon + 0.0024, lat + 0.0014)
    store.process([msg(far_sensor, "alarm", alarm("cam-2", time.time()))])
    links = pg.execute(
        "SELECT c.device_id, c.relation FROM alarm_cameras c JOIN alarms a "
        "ON a.id = c.alarm_id WHERE a.device_id = %s ORDER BY c.rank",
        (far_sensor,),
    ).fetchall()
    assert links == [(cam_b, "nearest"), (cam_a, "nearest")]


def test_bad_input_goes_to_dead_letters_and_unknown_ids_to_pending(store, make_device, pg) -> None:
    d = make_device()
    unknown = "36012100001320999999"
    big = b'{"ts": 1}' + b" " * 5000
    batch = [
        msg(d, "alarm", b"{garbage"),
        msg(d, "alarm", alarm("x", time.time(), severity=9)),
        Message("gw/v1/1234/heartbeat", b'{"ts": 1}'),
        Message("gw/v1/99012100001320000001/heartbeat", b'{"ts": 1}'),
        msg(d, "heartbeat", big),
        msg(d, "snapshot", b"GIF89a"),
        msg(unknown, "heartbeat", {"ts": time.time()}),
        msg(unknown, "position", {"ts": time.time(), "lon": 115.1, "lat": 28.1}),
        msg(d, "heartbeat", {"ts": time.time()}),
    ]
    res = store.process(batch)
    assert res.counts["dead_letters"] == 6
    reasons = sorted(
        r[0]
        for r in pg.execute(
            "SELECT reason FROM dead_letters WHERE topic LIKE %s OR topic IN "
            "('gw/v1/1234/heartbeat', 'gw/v1/99012100001320000001/heartbeat')",
            (f"gw/v1/{d}/%",),
        ).fetchall()
    )
    assert len(reasons) == 6
    assert reasons[0].startswith("bad topic: device id '1234' is not 20 ASCII digits")
    assert reasons[1].startswith("bad topic: device id is not a valid GB/T 28181 code")
    assert "province" in reasons[1]
    assert reasons[2].startswith("invalid alarm: not valid JSON")
    assert reasons[3].startswith("invalid alarm: severity")
    assert reasons[4].startswith("invalid snapshot: not a JPEG")
    assert reasons[5].startswith("too large: 5009 bytes")
    raw = pg.execute(
        "SELECT payload FROM dead_letters WHERE reason LIKE 'invalid alarm: not valid JSON%%' "
        "AND topic = %s",
        (f"gw/v1/{d}/alarm",),
    ).fetchone()[0]
    assert bytes(raw) == b"{garbage"
    pending = pg.execute(
        "SELECT message_count, ST_X(position) FROM pending_devices WHERE id = %s", (unknown,)
    ).fetchone()
    assert pending == (2, 115.1)
    assert pg.execute("SELECT count(*) FROM devices WHERE id = %s", (unknown,)).fetchone()[0] == 0
    assert pg.execute("SELECT status FROM devices WHERE id = %s", (d,)).fetchone()[0] == "online"


def test_positions_latest_and_geofences(store, make_device, pg) -> None:
    from ingest.geofences import create_geofence

    car = make_device("patrol_car", None, None)
    cow = make_device("livestock_collar", None, None)
    lon, lat = 117.0, 30.0
    beat = create_geofence(
        pg,
        "beat 7",
        "keep_in",
        f"POLYGON(({lon} {lat}, {lon + 0.01} {lat}, {lon + 0.01} {lat + 0.01}, {lon} {lat + 0.01}, {lon} {lat}))",
        device_ids=[car],
    )
    railway = create_geofence(
        pg,
        "railway",
        "keep_out",
        f"LINESTRING({lon} {lat + 0.02}, {lon + 0.05} {lat + 0.02})",
        buffer_m=30,
        device_kinds=["livestock_collar"],
    )
    pg.commit()
    with pytest.raises(ValueError, match="buffer_m"):
        create_geofence(pg, "bad", "keep_out", "LINESTRING(0 0, 1 1)")
    pg.rollback()
    t0 = time.time() - 100
    before = last_event_id(pg)
    store.process(
        [
            msg(car, "position", {"ts": t0, "lon": lon + 0.005, "lat": lat + 0.005, "speed": 30}),
            msg(cow, "position", {"ts": t0, "lon": lon + 0.01, "lat": lat + 0.0195}),
        ]
    )
    assert (
        pg.execute("SELECT count(*) FROM geofence_events WHERE device_id = %s", (car,)).fetchone()[
            0
        ]
        == 0
    )  # started inside its beat: nothing to say
    # the cow steps onto the railway (within 30 m of the line), the car leaves its beat
    store.process(
        [
            msg(car, "position", {"ts": t0 + 10, "lon": lon + 0.02, "lat": lat + 0.005}),
            msg(car, "position", {"ts": t0 + 5, "lon": lon + 0.006, "lat": lat + 0.005}),
            msg(cow, "position", {"ts": t0 + 10, "lon": lon + 0.01, "lat": lat + 0.0199}),
        ]
    )
    # redelivery of the same batch changes nothing
    store.process([msg(cow, "position", {"ts": t0 + 10, "lon": lon + 0.01, "lat": lat + 0.0199})])
    got = pg.execute(
        "SELECT g.device_id, g.geofence_id, g.transition, a.kind FROM geofence_events g "
        "LEFT JOIN alarms a ON a.id = g.alarm_id WHERE g.device_id = ANY(%s) ORDER BY g.device_id",
        ([car, cow],),
    ).fetchall()
    assert sorted(got) == sorted(
        [(car, beat, "exit", "geofence_exit"), (cow, railway, "enter", "geofence_intrusion")]
    )
    n_pos = pg.execute(
        "SELECT count(*) FROM positions WHERE device_id = ANY(%s)", ([car, cow],)
    ).fetchone()[0]
    assert n_pos == 5
    latest = pg.execute(
        "SELECT round(ST_X(last_position)::numeric, 3), last_speed_kmh FROM devices WHERE id = %s",
        (car,),
    ).fetchone()
    assert float(latest[0]) == round(lon + 0.02, 3)  # newest by ts, not by arrival
    kinds = {e.kind for e in events_since(pg, before)}
    assert {"device.position", "geofence.enter", "geofence.exit", "alarm.new"} <= kinds


def test_analytics_alarms_and_quality_onset(store, make_device, pg) -> None:
    cam = make_device("ip_camera")
    t = time.time() - 50
    store.process(
        [
            msg(cam, "analytics", {"ts": t, "type": "zone", "zone": "gate", "object": "person"}),
            msg(cam, "analytics", {"ts": t, "type": "quality", "faults": []}),
            msg(cam, "analytics", {"ts": t + 1, "type": "quality", "faults": ["blur"]}),
            msg(cam, "analytics", {"ts": t + 2, "type": "quality", "faults": ["blur"]}),
        ]
    )
    store.process(
        [msg(cam, "analytics", {"ts": t + 3, "type": "quality", "faults": ["blur", "too_dark"]})]
    )
    store.process(
        [msg(cam, "analytics", {"ts": t + 3, "type": "quality", "faults": ["blur", "too_dark"]})]
    )
    health = pg.execute(
        "SELECT intact, faults FROM camera_health WHERE device_id = %s ORDER BY ts", (cam,)
    ).fetchall()
    assert health == [
        (True, []),
        (False, ["blur"]),
        (False, ["blur"]),
        (False, ["blur", "too_dark"]),
    ]
    rows = pg.execute(
        "SELECT kind, repeat_count, detail->'new_faults' FROM alarms WHERE device_id = %s ORDER BY id",
        (cam,),
    ).fetchall()
    # one zone intrusion; quality onset (blur) then the new fault merged into the open alarm
    assert rows[0][:2] == ("zone_intrusion", 1)
    assert rows[1] == ("video_quality", 2, ["blur"])
    assert len(rows) == 2


def test_snapshot_keeps_latest_only(store, make_device, pg) -> None:
    cam = make_device("ip_camera")
    store.process([msg(cam, "snapshot", b"\xff\xd8\xff\xe0one", qos=0)])
    store.process([msg(cam, "snapshot", b"\xff\xd8\xff\xe0two", qos=0)])
    rows = pg.execute("SELECT jpeg FROM device_snapshots WHERE device_id = %s", (cam,)).fetchall()
    assert [bytes(r[0]) for r in rows] == [b"\xff\xd8\xff\xe0two"]


def test_payloads_from_the_vision_worker_are_accepted(store, make_device, pg) -> None:
    """The analytics the vision package publishes (hardware/contract/analytics.py) land as health and alarms."""
    events = pytest.importorskip("hardware.contract.analytics")
    cam = make_device("ip_camera")
    t = time.time() - 30
    thumb = __import__("base64").b64encode(b"\xff\xd8\xff\xe0tiny").decode()
    payloads = [
        events.QualityEvent(ts=t, intact=True),
        events.QualityEvent(
            ts=t + 1,
            intact=False,
            faults=[events.FaultScore(code="occlusion", score=0.9, threshold=0.5)],
            thumbnail_jpeg_b64=thumb,
        ),
        events.TripwireEvent(
            ts=t + 2, line="gate", direction="left_to_right", track=3, box=(1, 2, 3, 4)
        ),
        events.DwellEvent(ts=t + 3, zone="yard", track=4, seconds=65.0, box=(1, 2, 3, 4)),
        events.MotionEvent(ts=t + 4, share=0.2, boxes=[(1, 2, 3, 4)], frame_w=640, frame_h=360),
    ]
    res = store.process([msg(cam, "analytics", events.to_payload(p)) for p in payloads])
    assert res.counts.get("dead_letters", 0) == 0
    health = pg.execute(
        "SELECT intact, faults, metrics->'fault_scores', thumbnail FROM camera_health "
        "WHERE device_id = %s ORDER BY ts",
        (cam,),
    ).fetchall()
    assert [(h[0], h[1]) for h in health] == [(True, []), (False, ["occlusion"])]
    assert health[1][2] == {"occlusion": 0.9} and bytes(health[1][3]) == b"\xff\xd8\xff\xe0tiny"
    kinds = [
        r[0]
        for r in pg.execute(
            "SELECT kind FROM alarms WHERE device_id = %s ORDER BY raised_at", (cam,)
        ).fetchall()
    ]
    assert kinds == ["video_quality", "tripwire_crossing", "loitering", "motion"]


def test_batch_resumes_at_live_state_after_records_committed(store, make_device, pg) -> None:
    """A failure between the two transactions: the retry of the same batch does only the live
    state, so its records (here a dead letter and an alarm) are not written twice."""
    import psycopg

    d = make_device()
    pg.execute("UPDATE devices SET status = 'offline' WHERE id = %s", (d,))
    pg.commit()
    bad = Message("gw/v1/not-a-device/heartbeat", b"{}", 1, 1)
    batch = [bad, msg(d, "alarm", alarm("resume-1", time.time()))]
    real = store._live_state
    calls = []

    def failing(w, res):
        calls.append(1)
        if len(calls) == 1:
            raise psycopg.OperationalError("connection lost (test)")
        return real(w, res)

    store._live_state = failing
    with pytest.raises(psycopg.OperationalError):
        store.process(batch)
    res = store.process(batch)
    assert len(calls) == 2 and res.counts["messages"] == 2
    n_dead = pg.execute(
        "SELECT count(*) FROM dead_letters WHERE topic = 'gw/v1/not-a-device/heartbeat'"
    ).fetchone()[0]
    assert n_dead == 1
    assert pg.execute("SELECT repeat_count FROM alarms WHERE device_id = %s", (d,)).fetchall() == [
        (1,)
    ]
    assert pg.execute("SELECT status FROM devices WHERE id = %s", (d,)).fetchone()[0] == "online"


def test_prune_events_removes_only_expired_in_chunks(db_url, pg) -> None:
    import psycopg

    from ingest.events import emit_events, prune_events

    pg.execute(
        "INSERT INTO hub_events (at, kind, payload) SELECT now() - interval '100 hours', "
        "'x.prune_test', '{}'::jsonb FROM generate_series(1, 2500)"
    )
    keep = emit_events(pg, [("x.prune_test", None, {"n": i}) for i in range(3)])
    pg.commit()
    with psycopg.connect(
        db_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        assert prune_events(conn, 72.0, chunk=1000) == 2500
        assert prune_events(conn, 72.0, chunk=1000) == 0
    left = pg.execute(
        "SELECT id FROM hub_events WHERE kind = 'x.prune_test' ORDER BY id"
    ).fetchall()
    assert [r[0] for r in left] == keep


def test_paged_cache_reload_sees_every_device_and_drops_retired(store, make_device, pg) -> None:
    devices = [make_device() for _ in range(7)]
    pg.execute("UPDATE devices SET retired_at = now() WHERE id = %s", (devices[0],))
    pg.commit()
    store.refresh_known(store.conn, page=3, pause_s=0.001)
    store.conn.commit()
    assert devices[0] not in store.known
    assert all(d in store.known for d in devices[1:])
    total = pg.execute("SELECT count(*) FROM devices WHERE retired_at IS NULL").fetchone()[0]
    assert len(store.known) == total
