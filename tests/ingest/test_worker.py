"""The worker as a real process on the real broker and database: end to end, and faults survived
(kill -9 mid-stream, PostGIS restart, broker restart)."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest

from tests.ingest.conftest import wait_for


def count(db_url: str, sql: str, params=()) -> int:
    try:
        with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as c:
            return c.execute(sql, params).fetchone()[0]
    except psycopg.OperationalError:
        return -1  # the database is restarting


def alarm_payload(msg_id: str, kind: str = "intrusion") -> bytes:
    return json.dumps({"msg_id": msg_id, "ts": time.time(), "kind": kind, "severity": 2}).encode()


class Stream:
    """Publish QoS 1 alarms from a thread at a steady pace; remembers what the broker acked."""

    def __init__(self, client, devices: list[str], total: int, per_s: float, prefix: str) -> None:
        self.client, self.devices, self.total, self.gap = client, devices, total, 1.0 / per_s
        self.prefix = prefix
        self.acked = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for i in range(self.total):
            d = self.devices[i % len(self.devices)]
            info = self.client.publish(
                f"gw/v1/{d}/alarm", alarm_payload(f"{self.prefix}-{i}", kind=f"k{i % 7}"), qos=1
            )
            info.wait_for_publish(30)
            self.acked += 1
            time.sleep(self.gap)

    def start(self) -> Stream:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(120)


def exactly_once(db_url: str, devices: list[str], prefix: str, total: int) -> tuple[int, int]:
    """(messages recorded, sum of repeat counts) for this stream: both must equal total."""
    msgs = count(
        db_url,
        "SELECT count(*) FROM alarm_messages WHERE device_id = ANY(%s) AND msg_id LIKE %s "
        "AND alarm_id IS NOT NULL",
        (devices, prefix + "-%"),
    )
    reps = count(
        db_url,
        "SELECT coalesce(sum(repeat_count), 0) FROM alarms WHERE device_id = ANY(%s)",
        (devices,),
    )
    return msgs, reps


def test_end_to_end_good_bad_and_event_relay(start_worker, make_device, hub_client, db_url) -> None:
    from tests.ingest.conftest import Collector

    cam = make_device("ip_camera")
    events = Collector(hub_client)
    hub_client.subscribe("gw/v1/hub/events", qos=0)
    start_worker()
    hub_client.publish(f"gw/v1/{cam}/heartbeat", json.dumps({"ts": time.time()}), qos=1)
    hub_client.publish(f"gw/v1/{cam}/alarm", alarm_payload("e2e-1"), qos=1)
    hub_client.publish(f"gw/v1/{cam}/alarm", b"\x00\x01 not json", qos=1)
    hub_client.publish("gw/v1/12345/alarm", alarm_payload("e2e-2"), qos=1)
    assert wait_for(
        lambda: count(db_url, "SELECT count(*) FROM alarms WHERE device_id = %s", (cam,)) == 1
    )
    assert wait_for(
        lambda: (
            count(
                db_url,
                "SELECT count(*) FROM dead_letters WHERE topic IN (%s, 'gw/v1/12345/alarm')",
                (f"gw/v1/{cam}/alarm",),
            )
            == 2
        )
    )
    # presence is written in batches of its own, not with the alarm: on a loaded machine (CI) the
    # alarm and the dead letters were stored before the heartbeat's batch
    assert wait_for(
        lambda: count(
            db_url, "SELECT count(*) FROM devices WHERE id = %s AND status = 'online'", (cam,)
        )
    )

    def relayed() -> list[dict]:
        out = []
        for _, raw in list(events.messages):
            ev = json.loads(raw)
            if ev["payload"].get("device_id") == cam:
                out.append(ev)
        return out

    assert wait_for(lambda: {e["kind"] for e in relayed()} >= {"alarm.new", "device.status"})


def test_worker_sweeps_a_silent_device_offline(start_worker, make_device, hub_client, db_url):
    """The worker's own sweep (its thread) ends a device's online interval after 3 missed
    heartbeats, while a device that keeps talking stays online."""
    quiet = make_device("ip_camera", heartbeat_s=1)
    # the chatty one talks every ~0.3 s; its 5 s interval (offline after 15 s of silence) keeps a
    # loaded machine's scheduling gaps from sweeping it too, which is not what this test is about
    chatty = make_device("ip_camera", heartbeat_s=5)
    start_worker()
    hub_client.publish(f"gw/v1/{quiet}/heartbeat", json.dumps({"ts": time.time()}), qos=1)
    deadline = time.monotonic() + 20
    reason = None
    while time.monotonic() < deadline and reason is None:
        hub_client.publish(f"gw/v1/{chatty}/heartbeat", json.dumps({"ts": time.time()}), qos=1)
        time.sleep(0.3)
        with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as c:
            row = c.execute(
                "SELECT p.end_reason FROM devices d JOIN device_presence p ON p.device_id = d.id "
                "WHERE d.id = %s AND d.status = 'offline'",
                (quiet,),
            ).fetchone()
        reason = row[0] if row else None
    assert reason == "missed_heartbeats"
    assert count(
        db_url, "SELECT count(*) FROM devices WHERE id = %s AND status = 'online'", (chatty,)
    )
    assert not count(
        db_url,
        "SELECT count(*) FROM device_presence WHERE device_id = %s AND end_reason IS NOT NULL",
        (chatty,),
    ), "the device that kept talking was swept offline"


def test_kill9_mid_stream_every_alarm_exactly_once(
    start_worker, make_device, hub_client, db_url
) -> None:
    devices = [make_device("alarm_input") for _ in range(5)]
    total = 400
    worker = start_worker()
    stream = Stream(hub_client, devices, total, per_s=400, prefix="k9").start()
    assert wait_for(lambda: exactly_once(db_url, devices, "k9", total)[0] >= 60)
    worker.kill9()
    in_db_at_kill = exactly_once(db_url, devices, "k9", total)[0]
    assert in_db_at_kill < total, "stream finished before the kill; make it longer"
    time.sleep(0.3)  # let some messages queue in the persistent session
    start_worker(worker.env["GRIDWATCH_INGEST_CLIENT_ID"])
    stream.join()
    assert stream.acked == total
    assert wait_for(lambda: exactly_once(db_url, devices, "k9", total) == (total, total))
    time.sleep(0.5)  # any late redelivery would show up as a double count now
    assert exactly_once(db_url, devices, "k9", total) == (total, total)


def test_postgis_restart_loses_no_alarm(start_worker, make_device, hub_client, db_url) -> None:
    from gridwatch.services import LocalPostgres
    from gridwatch.settings import get_settings

    settings = get_settings()
    if not settings.local_database:
        pytest.skip("needs the project-local PostGIS to restart it")
    devices = [make_device("alarm_input") for _ in range(4)]
    total = 300
    worker = start_worker()
    stream = Stream(hub_client, devices, total, per_s=300, prefix="pg").start()
    assert wait_for(lambda: exactly_once(db_url, devices, "pg", total)[0] >= 30)
    LocalPostgres(settings).restart()
    stream.join()
    assert wait_for(lambda: exactly_once(db_url, devices, "pg", total) == (total, total), 60)
    log = worker.log.read_text(errors="replace")
    assert "retrying" in log, "the worker never saw the database go away"
    assert worker.proc.poll() is None


def _publish_alarms(mqtt_broker, device_id: str, prefix: str, n: int) -> None:
    from tests.ingest.conftest import mqtt_client

    client, rc = mqtt_client(mqtt_broker, mqtt_broker.user, mqtt_broker.password)
    assert rc is not None and not rc.is_failure
    for i in range(n):
        info = client.publish(f"gw/v1/{device_id}/alarm", alarm_payload(f"{prefix}-{i}"), qos=1)
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def _restart_broker() -> None:
    from tests.ingest.conftest import restart_broker

    restart_broker()


def test_broker_restart_worker_resumes(start_worker, make_device, mqtt_broker, db_url) -> None:
    d = make_device("alarm_input")
    worker = start_worker()
    _restart_broker()
    # Mosquitto 2.0.11 does not restore shared subscriptions from its persistence file, so the
    # group only receives again once the worker has re-subscribed by itself.
    assert worker.wait_connected(times=2, timeout=30)
    _publish_alarms(mqtt_broker, d, "br", 20)
    assert wait_for(lambda: exactly_once(db_url, [d], "br", 20) == (20, 20), 30)
    assert worker.proc.poll() is None  # the same process reconnected by itself


def test_broker_restart_plain_session_queues_while_worker_reconnects(
    start_worker, make_device, mqtt_broker, db_url
) -> None:
    d = make_device("alarm_input")
    worker = start_worker(shared=False)
    _restart_broker()
    # Published before the worker is back: the restored persistent session queues them.
    _publish_alarms(mqtt_broker, d, "bq", 20)
    assert worker.wait_connected(times=2, timeout=30)
    assert wait_for(lambda: exactly_once(db_url, [d], "bq", 20) == (20, 20), 30)
