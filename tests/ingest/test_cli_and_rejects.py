"""`gridwatch deadletters` and the worker's handling of a message the database itself refuses."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from ingest.store import Message

pytestmark = pytest.mark.integration


def test_database_rejection_dead_letters_one_message_and_keeps_the_rest(
    make_device, pg, cfg, db_url
) -> None:
    from ingest.worker import IngestWorker

    d = make_device("alarm_input")
    good = {"msg_id": "ok-1", "ts": time.time(), "kind": "smoke", "severity": 1}
    # valid JSON and valid for the schema, but PostgreSQL's jsonb cannot hold \u0000
    bad = {
        "msg_id": "nul-1",
        "ts": time.time(),
        "kind": "panic",
        "severity": 1,
        "detail": {"x": "\u0000"},
    }
    worker = IngestWorker(cfg=cfg)
    try:
        res = worker.persist(
            [
                Message(f"gw/v1/{d}/alarm", json.dumps(good).encode(), 1),
                Message(f"gw/v1/{d}/alarm", json.dumps(bad).encode(), 1),
            ]
        )
    finally:
        worker._drop_db()
    assert res.counts["dead_letters"] == 1, res.counts
    assert pg.execute("SELECT msg_id FROM alarms WHERE device_id = %s", (d,)).fetchall() == [
        ("ok-1",)
    ]
    reason = pg.execute(
        "SELECT reason FROM dead_letters WHERE topic = %s ORDER BY id DESC LIMIT 1",
        (f"gw/v1/{d}/alarm",),
    ).fetchone()[0]
    assert reason.startswith("database rejected:")


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
