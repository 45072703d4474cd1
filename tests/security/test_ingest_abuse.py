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
        (f"gw/v1/{d}/analytics", b'{"type": "motion", "ts": 1e400}', "out of range"),
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
    assert wait_for(lambda: len(dead_letters(pg, d)) == len(poison), 30)
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
