"""Hostile devices against the real ingest worker, broker and database: poison payloads,
oversized batches, floods, dead-letter and pending caps (issue 12, the ingest side)."""

# ruff: noqa: F811 - the ingest fixtures are imported by name and used as parameters

from __future__ import annotations

import json
import time

import psycopg
import pytest

from ingest.store import BatchStore, Message
from tests.ingest.conftest import (  # noqa: F401 - fixtures
    cfg,
    hub_client,
    make_device,
    pg,
    start_worker,
    store,
    wait_for,
)

pytestmark = pytest.mark.integration

MAX_DEPTH_PLUS = 5000


def deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


def alarm(msg_id: str, **extra) -> bytes:
    body = {"msg_id": msg_id, "ts": time.time(), "kind": "intrusion", "severity": 2}
    body.update(extra)
    return json.dumps(body).encode()


def poison_messages(d: str) -> list[tuple[str, bytes, str]]:
    """(topic, payload, a word the dead letter's reason must contain) for each kind of poison."""
    head = b'{"msg_id": "x", "ts": %d, "kind": "intrusion", "severity": 2, "detail": ' % int(
        time.time()
    )
    return [
        (f"gw/v1/{d}/state", b'{"state": ' + deep(MAX_DEPTH_PLUS) + b"}", "state"),
        (f"gw/v1/{d}/state", b'{"state": ' + deep(40) + b"}", "deeper than"),
        (f"gw/v1/{d}/alarm", head + b'{"x": ' + deep(MAX_DEPTH_PLUS) + b"}}", "deeper than"),
        (f"gw/v1/{d}/alarm", head + b'{"x": NaN}}', "NaN"),
        (f"gw/v1/{d}/alarm", head + b'{"x": 1e400}}', "out of range"),
        (f"gw/v1/{d}/alarm", head + b'{"x": 123456789012345678901234567890}}', "out of range"),
        (f"gw/v1/{d}/alarm", head + b'{"x": "\xff\xfe"}}', "UTF-8"),
        (f"gw/v1/{d}/heartbeat", b'{"ts": ' + deep(MAX_DEPTH_PLUS) + b"}", "deeper than"),
        (f"gw/v1/{d}/position", b'{"ts": 1714552200, "lon": NaN, "lat": 28}', "NaN"),
        (f"gw/v1/{d}/analytics", b'{"type": "motion", "ts": 1e400}', "finite"),
    ]


def dead_letters(pg: psycopg.Connection, d: str) -> list[tuple[str, bytes, str]]:
    pg.rollback()
    rows = pg.execute(
        "SELECT topic, payload, reason FROM dead_letters WHERE topic LIKE %s ORDER BY id",
        (f"gw/v1/{d}/%",),
    ).fetchall()
    return [(r[0], bytes(r[1]), r[2]) for r in rows]


def test_poison_in_a_batch_is_dead_lettered_and_the_rest_stored(store, make_device, pg) -> None:
    d = make_device("alarm_input")
    poison = poison_messages(d)
    batch = [Message(f"gw/v1/{d}/alarm", alarm("good-0"), 1)]
    for i, (topic, raw, _) in enumerate(poison):
        batch.append(Message(topic, raw, 1))
        batch.append(Message(f"gw/v1/{d}/alarm", alarm(f"good-{i + 1}", kind=f"k{i}"), 1))
    store.max_payload = 64 * 1024
    res = store.process(batch)
    assert res.counts["dead_letters"] == len(poison)
    stored = pg.execute("SELECT count(*) FROM alarm_messages WHERE device_id = %s", (d,)).fetchone()
    assert stored[0] == len(poison) + 1
    got = dead_letters(pg, d)
    assert [(t, p) for t, p, _ in got] == [(t, p) for t, p, _ in poison], "raw bytes kept"
    for (_, _, reason), (_, _, word) in zip(got, poison, strict=True):
        assert word in reason, reason


def test_poison_does_not_crash_the_worker(start_worker, make_device, hub_client, pg) -> None:
    """The attack of the issue: 5,000-deep state on the device's own topic, then others; the
    worker dead-letters each, stays up, and goes on storing the device's alarms."""
    d = make_device("alarm_input")
    worker = start_worker()
    poison = poison_messages(d)
    for i, (topic, raw, _) in enumerate(poison):
        hub_client.publish(topic, raw, qos=1).wait_for_publish(10)
        hub_client.publish(f"gw/v1/{d}/alarm", alarm(f"w-{i}", kind=f"k{i}"), qos=1)

    def stored() -> int:
        pg.rollback()
        return pg.execute(
            "SELECT count(*) FROM alarm_messages WHERE device_id = %s", (d,)
        ).fetchone()[0]

    assert wait_for(lambda: stored() == len(poison), 30), stored()
    # every poison message is a dead letter (a batch redelivered after a reconnect under load
    # may dead-letter one twice: dead letters keep what came, they are not deduplicated)
    want = {(t, p) for t, p, _ in poison}
    assert wait_for(lambda: {(t, p) for t, p, _ in dead_letters(pg, d)} == want, 30)
    assert worker.proc is not None and worker.proc.poll() is None, "the worker died"
    log = worker.log.read_text(errors="replace")
    assert "Traceback" not in log and "RecursionError" not in log, log[-2000:]
    hub_client.publish(f"gw/v1/{d}/alarm", alarm("after"), qos=1)
    assert wait_for(lambda: stored() == len(poison) + 1, 30)


class _AllocFails(BatchStore):
    """A store whose batches of more than `limit` messages fail to allocate (what 5,000 x 250 kB
    payloads did), on the real database otherwise."""

    limit = 4

    def process(self, batch):
        if len(batch) > self.limit:
            raise MemoryError(f"cannot allocate a batch of {len(batch)}")
        return super().process(batch)


def test_memory_error_splits_the_batch_instead_of_retrying(make_device, pg, cfg) -> None:
    from ingest.worker import IngestWorker

    d = make_device("alarm_input")
    worker = IngestWorker(cfg=cfg)
    worker._db()
    assert worker.conn is not None
    worker.store = _AllocFails(worker.conn, cfg, 4096)
    msgs = [Message(f"gw/v1/{d}/alarm", alarm(f"m-{i}", kind=f"k{i}"), 1) for i in range(20)]
    try:
        res = worker.persist(msgs)
    finally:
        worker._drop_db()
    assert res.counts["messages"] == 20 and worker.stats.db_retries == 0
    n = pg.execute("SELECT count(*) FROM alarm_messages WHERE device_id = %s", (d,)).fetchone()
    assert n[0] == 20


def test_a_single_message_that_fails_to_encode_is_dead_lettered(make_device, pg, cfg) -> None:
    """An error no one foresaw in one message (here: allocation of that one message) costs
    that message, kept as a dead letter with its bytes; the others are stored."""
    from ingest.worker import IngestWorker

    d = make_device("alarm_input")
    worker = IngestWorker(cfg=cfg)
    worker._db()
    assert worker.conn is not None
    worker.store = _AllocFails(worker.conn, cfg, 4096)
    worker.store.limit = 0  # every batch, down to one message, fails
    bad = Message(f"gw/v1/{d}/alarm", alarm("only"), 1)
    try:
        res = worker.persist([bad])
    finally:
        worker._drop_db()
    assert res.counts["dead_letters"] == 1
    topic, payload, reason = dead_letters(pg, d)[-1]
    assert payload == bad.payload and reason.startswith("could not be stored: MemoryError")


def test_batches_are_bounded_by_bytes(make_device, cfg) -> None:
    from ingest.worker import IngestWorker

    worker = IngestWorker(cfg=cfg.model_copy(update={"batch_max_bytes": 1_000_000}))
    big = b"x" * 250_000
    with worker._cond:
        for i in range(20):
            worker._inbox.append(Message("gw/v1/x/alarm", big, 1, i))
            worker._inbox_bytes += len(big)
        sizes = []
        while worker._inbox:
            batch = worker._take_batch()
            sizes.append(sum(len(m.payload) for m in batch))
    assert sizes == [1_000_000] * 5 and worker._inbox_bytes == 0
    with worker._cond:  # one message bigger than the limit still goes, alone
        worker._inbox.append(Message("gw/v1/x/alarm", b"y" * 2_000_000, 1, 1))
        worker._inbox_bytes = 2_000_000
        assert len(worker._take_batch()) == 1


# ---------------------------------------------------------------- fair share


def fair_store(db_url: str, cfg, **limits) -> BatchStore:
    """A BatchStore with per-device budgets, as the worker runs it."""
    from ingest.fairshare import FairShare

    c = cfg.model_copy(update=limits)
    conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
    s = BatchStore(conn, c, max_payload=4096)
    s.fair = FairShare(c)
    return s


LIMITS = dict(
    device_msgs_per_s=20.0,
    device_alarms_per_s=2.0,
    device_burst_s=5.0,
    quarantine_after=50,
    quarantine_s=600.0,
)


def test_flood_of_distinct_alarms_is_quarantined_with_an_operator_alarm(
    db_url, cfg, make_device, pg
) -> None:
    """4,750 alarms of distinct kinds from one device in one second: it opens only its burst
    of alarms, then is quarantined (one device_flooding alarm for the operators); a normal
    device in the same batches loses nothing."""
    abuser, normal = make_device("alarm_input"), make_device("alarm_input")
    s = fair_store(db_url, cfg, **LIMITS)
    counts: dict[str, int] = {}
    try:
        for b in range(10):
            batch = [
                Message(f"gw/v1/{abuser}/alarm", alarm(f"f-{b}-{i}", kind=f"k{b}_{i}"), 1)
                for i in range(475)
            ]
            batch.insert(200, Message(f"gw/v1/{normal}/alarm", alarm(f"n-{b}", kind=f"n{b}"), 1))
            for k, v in s.process(batch).counts.items():
                counts[k] = counts.get(k, 0) + v
    finally:
        s.conn.close()
    opened = pg.execute(
        "SELECT kind, detail FROM alarms WHERE device_id = %s", (abuser,)
    ).fetchall()
    flood = [d for k, d in opened if k == "device_flooding"]
    assert len(flood) == 1 and flood[0]["message"] == f"device {abuser} flooding: quarantined"
    assert len(opened) - 1 == 10  # its burst: 2 alarms/s x 5 s
    assert counts["quarantined"] == 1
    assert counts["dropped"] == 4750 - 10 - 50  # after the burst, 49 limited + 1 that did it
    reasons = [r for _, _, r in dead_letters(pg, abuser)]
    assert sum(r.startswith("rate limited") for r in reasons) == 49
    assert sum(r.startswith("quarantined: device") for r in reasons) == 1
    n = pg.execute("SELECT count(*) FROM alarms WHERE device_id = %s", (normal,)).fetchone()[0]
    assert n == 10


def test_dead_letters_of_one_device_are_capped_per_day(db_url, cfg, make_device, pg) -> None:
    d = make_device("alarm_input")
    s = fair_store(db_url, cfg, device_deadletter_bytes_per_day=20_000)
    junk = [Message(f"gw/v1/{d}/alarm", b"{" + b"x" * 999, 1) for _ in range(100)]
    try:
        res = s.process(junk)
    finally:
        s.conn.close()
    stored = dead_letters(pg, d)
    assert len(stored) == 20  # 19 within 20,000 bytes, then the one that quarantined it
    assert stored[-1][2].startswith("quarantined:") and "bytes/day" in stored[-1][2]
    assert res.counts["dropped"] == 80
    flood = pg.execute(
        "SELECT count(*) FROM alarms WHERE device_id = %s AND kind = 'device_flooding'", (d,)
    ).fetchone()[0]
    assert flood == 1


def test_dead_letter_retention_by_age_and_size(pg) -> None:
    from ingest.retention import prune_dead_letters

    tag = f"gw/v1/retention-{time.time_ns()}"
    pg.execute("DELETE FROM dead_letters")
    pg.execute(
        "INSERT INTO dead_letters (topic, payload, reason, received_at) "
        "SELECT %s, convert_to(repeat('x', 1000), 'UTF8'), 'test', now() - ((31 - g) || ' hours')::interval "
        "FROM generate_series(1, 30) g",
        (tag,),
    )
    pg.commit()
    with psycopg.connect(pg.info.dsn, password=pg.info.password, autocommit=True) as conn:
        assert prune_dead_letters(conn, retention_h=20.5, max_bytes=10**9) == 10
        assert prune_dead_letters(conn, retention_h=100, max_bytes=5500) == 15
    left = pg.execute(
        "SELECT count(*), sum(octet_length(payload)), max(received_at) < now() - interval '6 hours' "
        "FROM dead_letters"
    ).fetchone()
    assert left[0] == 5 and left[1] <= 5500 and left[2] is False  # the newest kept


def test_pending_devices_capped_per_source_and_expiring(db_url, cfg, pg) -> None:
    from hardware.gbid import compose
    from ingest.retention import prune_pending

    s = fair_store(db_url, cfg, pending_max_per_source=3)
    serial = int(time.time()) % 1_000_000
    # the same source (centre code 36012101), then another one
    crowd = [compose("36012101", 132, serial + i).code for i in range(6)]
    other = compose("36012202", 132, serial).code
    pg.execute("DELETE FROM pending_devices WHERE left(id::text, 8) IN ('36012101', '36012202')")
    pg.commit()
    try:
        first = s.process([Message(f"gw/v1/{i}/heartbeat", b'{"ts": 1}', 1) for i in crowd[:2]])
        second = s.process(
            [Message(f"gw/v1/{i}/heartbeat", b'{"ts": 2}', 1) for i in crowd[2:] + [other]]
            + [Message(f"gw/v1/{crowd[0]}/heartbeat", b'{"ts": 3}', 1)]  # already waiting
        )
    finally:
        s.conn.close()
    assert first.counts["pending"] == 2
    assert second.counts["pending"] == 3 and second.counts["pending_refused"] == 3
    waiting = {
        r[0]
        for r in pg.execute(
            "SELECT id FROM pending_devices WHERE id = ANY(%s)", (crowd + [other],)
        ).fetchall()
    }
    assert waiting == set(crowd[:3]) | {other}
    refused = [r for i in crowd[3:] for _, _, r in dead_letters(pg, i)]
    assert len(refused) == 3 and all(
        r.startswith("pending cap: 3 unknown devices") for r in refused
    )
    pg.execute(
        "UPDATE pending_devices SET last_seen = now() - interval '2 days' WHERE id = %s", (other,)
    )
    pg.commit()
    with psycopg.connect(pg.info.dsn, password=pg.info.password, autocommit=True) as conn:
        assert prune_pending(conn, ttl_h=24) >= 1
    assert (
        pg.execute("SELECT count(*) FROM pending_devices WHERE id = %s", (other,)).fetchone()[0]
        == 0
    )


def test_alarm_outside_its_device_region_is_flagged(store, make_device, pg) -> None:
    code = f"3601{time.time_ns() % 10**8:08d}"
    pg.execute(
        "INSERT INTO regions (code, level, name, geom) VALUES (%s, 4, 'test township', "
        "ST_Multi(ST_MakeEnvelope(115.8, 28.6, 116.0, 28.8, 4326)))",
        (code,),
    )
    pg.commit()
    d = make_device("alarm_input", lon=115.9, lat=28.7, region_code=code)
    store.process(
        [
            Message(f"gw/v1/{d}/alarm", alarm("in", kind="a", lon=115.95, lat=28.75), 1),
            Message(f"gw/v1/{d}/alarm", alarm("out", kind="b", lon=116.5, lat=28.7), 1),
            Message(f"gw/v1/{d}/alarm", alarm("none", kind="c"), 1),
        ]
    )
    got = dict(
        pg.execute(
            "SELECT msg_id, outside_region FROM alarms WHERE device_id = %s", (d,)
        ).fetchall()
    )
    assert got == {"in": False, "out": True, "none": None}


def test_flood_against_the_real_worker(services, make_device, hub_client, pg) -> None:
    """The worker process with its default fair-share machinery (limits lowered to keep the
    test short): a device flooding distinct alarms is quarantined and an operator alarm says
    so, while another device's alarms all arrive; the worker stays up."""
    import uuid

    from tests.ingest.conftest import WorkerProcess

    abuser, normal = make_device("alarm_input"), make_device("alarm_input")
    tag = uuid.uuid4().hex[:8]
    w = WorkerProcess(f"t-flood-{tag}", f"t{tag}")
    w.env.update(
        GRIDWATCH_INGEST_DEVICE_MSGS_PER_S="20",
        GRIDWATCH_INGEST_DEVICE_ALARMS_PER_S="2",
        GRIDWATCH_INGEST_DEVICE_BURST_S="5",
        GRIDWATCH_INGEST_QUARANTINE_AFTER="100",
    )
    w.start()
    try:
        assert w.wait_connected(), w.log.read_text(errors="replace")[-3000:]
        infos = []
        for i in range(3000):
            infos.append(
                hub_client.publish(f"gw/v1/{abuser}/alarm", alarm(f"f-{i}", kind=f"k{i}"), qos=1)
            )
            if i % 375 == 0:  # 8 alarms: within the normal device's burst
                infos.append(
                    hub_client.publish(
                        f"gw/v1/{normal}/alarm", alarm(f"n-{i}", kind=f"n{i}"), qos=1
                    )
                )
        for info in infos:
            info.wait_for_publish(30)

        def stored(d: str) -> int:
            pg.rollback()
            return pg.execute("SELECT count(*) FROM alarms WHERE device_id = %s", (d,)).fetchone()[
                0
            ]

        assert wait_for(lambda: stored(normal) == 8, 60), stored(normal)

        def flooding() -> int:
            pg.rollback()
            return pg.execute(
                "SELECT count(*) FROM alarms WHERE device_id = %s AND kind = 'device_flooding'",
                (abuser,),
            ).fetchone()[0]

        def why() -> str:  # what the worker saw, for a failure message
            reasons = pg.execute(
                "SELECT left(reason, 60), count(*) FROM dead_letters WHERE topic = %s GROUP BY 1",
                (f"gw/v1/{abuser}/alarm",),
            ).fetchall()
            log = w.log.read_text(errors="replace")[-3000:]
            return f"flooding={flooding()} stored={stored(abuser)} dead={reasons}\n{log}"

        assert wait_for(lambda: flooding() >= 1, 30), why()
        assert flooding() == 1, why()
        assert stored(abuser) < 100, why()  # not 3,000 open alarms
        assert w.proc is not None and w.proc.poll() is None
        assert "flooding: quarantined" in w.log.read_text(errors="replace")
    finally:
        w.stop()


def test_a_retried_batch_does_not_charge_its_devices_twice(db_url, cfg, make_device) -> None:
    """A batch is classified again on every retry across a database outage: its devices'
    budgets are charged once, or an outage would turn their alarms into 'rate limited'."""
    d = make_device("alarm_input")
    s = fair_store(db_url, cfg, **LIMITS)  # 10 alarms of burst
    batch = [Message(f"gw/v1/{d}/alarm", alarm(f"r-{i}", kind=f"r{i}"), 1) for i in range(8)]
    try:
        for _ in range(5):  # as the worker's retries would
            w = s._classify(batch)
            assert len(w.alarms) == 8 and not w.dead
        later = [Message(f"gw/v1/{d}/alarm", alarm(f"l-{i}", kind=f"l{i}"), 1) for i in range(3)]
        w = s._classify(later)
        assert len(w.alarms) == 2 and w.dead[0][2].startswith("rate limited")
    finally:
        s.conn.close()


def test_big_payloads_flow_in_byte_bounded_batches(services, make_device, hub_client, pg) -> None:
    """The issue's stall: many ~250 kB payloads at once. Batches stay within
    GRIDWATCH_INGEST_BATCH_MAX_BYTES (1 MB here), every big alarm is stored, and a small alarm
    of another device sent after them arrives too; the worker never retries as if the
    database were down."""
    import uuid

    from tests.ingest.conftest import WorkerProcess

    senders = [make_device("alarm_input") for _ in range(8)]
    normal = make_device("alarm_input")
    tag = uuid.uuid4().hex[:8]
    w = WorkerProcess(f"t-big-{tag}", f"t{tag}")
    w.env.update(GRIDWATCH_INGEST_BATCH_MAX_BYTES="1000000", GRIDWATCH_LOG_LEVEL="INFO")
    w.start()
    try:
        assert w.wait_connected(), w.log.read_text(errors="replace")[-3000:]
        pad = "x" * 250_000
        infos = [
            hub_client.publish(
                f"gw/v1/{senders[i % 8]}/alarm",
                alarm(f"big-{i}", kind=f"big{i}", detail={"pad": pad}),
                qos=1,
            )
            for i in range(48)
        ]
        infos.append(hub_client.publish(f"gw/v1/{normal}/alarm", alarm("small"), qos=1))
        for info in infos:
            info.wait_for_publish(60)

        def stored() -> int:
            pg.rollback()
            return pg.execute(
                "SELECT count(*) FROM alarms WHERE device_id = ANY(%s)", (senders + [normal],)
            ).fetchone()[0]

        assert wait_for(lambda: stored() == 49, 90), stored()
        log = w.log.read_text(errors="replace")
        assert "database unavailable" not in log and "batch kept, retrying" not in log, log[-2000:]
        assert w.proc is not None and w.proc.poll() is None
    finally:
        w.stop()


def test_a_quarantined_device_is_dropped_as_it_arrives(cfg) -> None:
    """Once quarantined, a device's messages are acked and dropped in the network thread,
    before a Message is made; the other devices' messages queue as usual."""
    from ingest.worker import IngestWorker

    worker = IngestWorker(cfg=cfg)
    bad, good = "36012100001340000001", "36012100001340000002"
    worker._blocked = {bad: time.monotonic() + 60}
    for i in range(100):
        worker._on_publish(f"gw/v1/{bad}/alarm", b"{}", 1, i + 1, False)
    worker._on_publish(f"gw/v1/{good}/alarm", b"{}", 1, 500, False)
    assert [m.topic for m in worker._inbox] == [f"gw/v1/{good}/alarm"]
    assert worker._dropped == 100 and [mid for mid, _ in worker._dropped_acks] == list(
        range(1, 101)
    )
    worker._blocked = {bad: time.monotonic() - 1}  # the quarantine is over
    worker._on_publish(f"gw/v1/{bad}/alarm", b"{}", 1, 501, False)
    assert len(worker._inbox) == 2


class _FakeAdmin:
    """Records dynamic-security commands (the gate's logic alone; the real broker is below)."""

    def __init__(self, log: list, clients: list) -> None:
        self.log, self.clients = log, clients

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def run(self, commands, ok_errors=()):
        self.log.extend((c["command"], c.get("username")) for c in commands)
        return [{"data": {"clients": self.clients}} for _ in commands]


def test_broker_gate_disables_for_the_quarantine_and_cleans_up() -> None:
    from gridwatch.settings import get_settings
    from ingest.brokergate import BrokerGate

    bad, left = "36012100001340000009", "36012100001340000008"
    sent: list = []
    clients = [{"username": left, "disabled": True}, {"username": "gridwatch-ingest"}]
    now = [100.0]
    gate = BrokerGate(
        get_settings(), admin_factory=lambda: _FakeAdmin(sent, clients), clock=lambda: now[0]
    )
    gate.start()
    gate.update({bad: 103.0, "pending:360121": 103.0})
    assert wait_for(lambda: ("disableClient", bad) in sent, 5)
    assert ("enableClient", left) in sent  # left disabled by an earlier worker
    assert not any(u == "pending:360121" for _, u in sent)
    now[0] = 104.0  # the quarantine is over
    assert wait_for(lambda: ("enableClient", bad) in sent, 5)
    gate.update({bad: 200.0})
    assert wait_for(lambda: sent.count(("disableClient", bad)) == 2, 5)
    gate.stop()
    assert sent.count(("enableClient", bad)) == 2 and gate.disabled() == set()


def test_a_quarantined_device_is_shut_out_at_the_broker(services, make_device, mqtt_broker) -> None:
    """A device flooding with its own credentials: the worker quarantines it and disables its
    client at the broker (disconnected, refused at CONNECT), and lets it in again afterwards."""
    import uuid

    from gridwatch.settings import get_settings
    from ingest.broker_acl import current_device_password, local_broker
    from tests.ingest.conftest import WorkerProcess, mqtt_client

    if not get_settings().local_mqtt:
        pytest.skip("needs the project-local Mosquitto and its dynamic-security plugin")
    abuser = make_device("alarm_input")
    local_broker(get_settings()).reload()

    def can_connect() -> bool:
        c, rc = mqtt_client(mqtt_broker, abuser, current_device_password(abuser))
        c.disconnect()
        c.loop_stop()
        return rc is not None and not rc.is_failure

    assert wait_for(can_connect, 15, every=0.2), "the device was never let in"
    tag = uuid.uuid4().hex[:8]
    w = WorkerProcess(f"t-gate-{tag}", f"t{tag}")
    w.env.update(
        GRIDWATCH_INGEST_DEVICE_MSGS_PER_S="20",
        GRIDWATCH_INGEST_DEVICE_ALARMS_PER_S="2",
        GRIDWATCH_INGEST_DEVICE_BURST_S="5",
        GRIDWATCH_INGEST_QUARANTINE_AFTER="50",
        GRIDWATCH_INGEST_QUARANTINE_S="6",
    )
    w.start()
    try:
        assert w.wait_connected(), w.log.read_text(errors="replace")[-3000:]
        client, rc = mqtt_client(mqtt_broker, abuser, current_device_password(abuser))
        assert rc is not None and not rc.is_failure
        lost = []
        client.on_disconnect = lambda *a: lost.append(a)
        for i in range(400):
            client.publish(f"gw/v1/{abuser}/alarm", alarm(f"g-{i}", kind=f"k{i}"), qos=1)
        assert wait_for(lambda: bool(lost), 30), w.log.read_text(errors="replace")[-3000:]
        client.loop_stop()
        assert not can_connect()  # refused while quarantined
        assert wait_for(can_connect, 30, every=0.5)  # and let in again when it ends
        assert "disabled flooding device" in w.log.read_text(errors="replace")
    finally:
        w.stop()
