"""`gridwatch deadletters` and the worker's handling of a message the database itself refuses."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from ingest.store import Message


def test_database_rejection_dead_letters_one_message_and_keeps_the_rest(
    make_device, pg, cfg, db_url
) -> None:
    from ingest.worker import IngestWorker

    d = make_device("alarm_input")
    now = time.time()
    good = [
        {"msg_id": f"ok-{i}", "ts": now + i, "kind": f"smoke_{i}", "severity": 1} for i in range(9)
    ]
    # Valid for the schema, refused by the database (a constraint this test adds for the
    # purpose): the batch is retried in halves until that one message is found.
    bad = {"msg_id": "refused-1", "ts": now, "kind": "refused_by_db", "severity": 1}
    pg.execute(
        "ALTER TABLE alarms ADD CONSTRAINT test_refused_kind CHECK (kind <> 'refused_by_db') "
        "NOT VALID"
    )
    pg.commit()
    worker = IngestWorker(cfg=cfg)
    msgs = [Message(f"gw/v1/{d}/alarm", json.dumps(a).encode(), 1) for a in good]
    msgs.insert(6, Message(f"gw/v1/{d}/alarm", json.dumps(bad).encode(), 1))
    try:
        res = worker.persist(msgs)
    finally:
        worker._drop_db()
        pg.execute("ALTER TABLE alarms DROP CONSTRAINT test_refused_kind")
        pg.commit()
    assert res.counts["dead_letters"] == 1, res.counts
    assert res.counts["messages"] == 9
    stored = pg.execute(
        "SELECT msg_id FROM alarms WHERE device_id = %s ORDER BY raised_at", (d,)
    ).fetchall()
    assert [r[0] for r in stored] == [a["msg_id"] for a in good]
    reason = pg.execute(
        "SELECT reason FROM dead_letters WHERE topic = %s ORDER BY id DESC LIMIT 1",
        (f"gw/v1/{d}/alarm",),
    ).fetchone()[0]
    assert reason.startswith("database rejected:") and "test_refused_kind" in reason


def test_deadletters_cli_lists_and_summarises(store, make_device) -> None:
    from gridwatch.cli import app

    d = make_device()
    store.process([Message(f"gw/v1/{d}/heartbeat", b"{oops", 0)])
    runner = CliRunner()
    out = runner.invoke(app, ["deadletters", "list", "--json", "--topic", d])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert rows[0]["topic"] == f"gw/v1/{d}/heartbeat"
    assert rows[0]["reason"].startswith("invalid heartbeat: not valid JSON")
    assert rows[0]["bytes"] == 5
    summary = runner.invoke(app, ["deadletters", "summary", "--json"])
    assert summary.exit_code == 0
    assert any(r["category"] == "invalid heartbeat" for r in json.loads(summary.output))
    table = runner.invoke(app, ["deadletters", "list", "--limit", "1"])
    assert table.exit_code == 0 and "reason" in table.output
    bad = runner.invoke(app, ["deadletters", "list", "--limit", "0"])
    assert bad.exit_code != 0


def test_batch_connection_plans_do_not_depend_on_empty_table_statistics(db_url, cfg) -> None:
    """The worker's batch connection: no JIT, no sequential scans (ingest/worker.py
    BATCH_SESSION); the sweep and the cache reload keep their own connections."""
    from ingest.worker import IngestWorker

    worker = IngestWorker(cfg=cfg)
    try:
        conn = worker._db().conn
        assert conn.execute("SHOW enable_seqscan").fetchone()[0] == "off"
        assert conn.execute("SHOW jit").fetchone()[0] == "off"
    finally:
        worker._drop_db()
