"""Two workers' batch stores writing the same devices at the same time (what a shared
subscription does): no deadlock, no lost or doubled row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gridwatch.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]

# One worker's side, in its own interpreter: its own hash seed gives its sets (and so the
# order its statements meet the rows in) their own order, as in two real worker processes.
CHILD = r"""
import json, random, sys, time
import psycopg
from ingest.config import IngestSettings
from ingest.store import BatchStore, Message

url, worker, start, spec = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ids = json.loads(open(spec).read())
conn = psycopg.connect(url)
# A deadlock would otherwise take the default 1 s to be found, and be retried by a worker.
conn.execute("SET deadlock_timeout = '50ms'")
# The plans of a real fleet (100,000 devices): index lookups driven by the batch's own order.
for knob in ("enable_hashjoin", "enable_mergejoin", "enable_seqscan"):
    conn.execute(f"SET {knob} = off")
conn.commit()
store = BatchStore(conn, IngestSettings(share_group="", presence_flush_s=0.0), 4096)
rnd = random.Random(worker)
t0 = time.time() - 100

def msg(d, suffix, payload):
    return Message(f"gw/v1/{d}/{suffix}", json.dumps(payload).encode(), 1, 1)

for r in range(ids["rounds"]):
    ts = t0 + r + worker / 10
    batch = [msg(d, "heartbeat", {"ts": ts}) for d in ids["cams"]]
    batch += [msg(d, "position", {"ts": ts, "lon": 115.9, "lat": 28.6}) for d in ids["cars"]]
    batch += [
        msg(d, "alarm", {"msg_id": f"r{r}w{worker}", "ts": ts, "kind": "panic", "severity": 1})
        for d in ids["sensors"]
    ]
    rnd.shuffle(batch)
    time.sleep(max(0.0, start + r * 0.3 - time.time()))  # both sides start each round together
    store.process(batch)
print("ok")
"""


def test_two_workers_on_shared_devices_never_deadlock(db_url, make_device, pg, tmp_path) -> None:
    spec = {
        "cams": [make_device("ip_camera") for _ in range(200)],
        "cars": [make_device("patrol_car") for _ in range(80)],
        "sensors": [make_device("alarm_input") for _ in range(15)],
        "rounds": 10,
    }
    path = tmp_path / "devices.json"
    path.write_text(json.dumps(spec))
    url = db_url.replace("postgresql+psycopg://", "postgresql://")
    settings = get_settings()
    if settings.local_database:  # SET deadlock_timeout is the superuser's (a test knob only)
        url = settings.db_url(db_url.rsplit("/", 1)[1], role="admin")
        url = url.replace("postgresql+psycopg://", "postgresql://")
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(w), str(start), str(path)],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": str(11 + w)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for w in range(2)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)
    alarms_sent = 2 * spec["rounds"] * len(spec["sensors"])
    n_msgs, n_repeats = pg.execute(
        "SELECT (SELECT count(*) FROM alarm_messages WHERE device_id = ANY(%s::bpchar[])), "
        "(SELECT sum(repeat_count) FROM alarms WHERE device_id = ANY(%s::bpchar[]))",
        (spec["sensors"], spec["sensors"]),
    ).fetchone()
    assert (n_msgs, n_repeats) == (alarms_sent, alarms_sent)
    n_pos = pg.execute(
        "SELECT count(*) FROM positions WHERE device_id = ANY(%s::bpchar[])", (spec["cars"],)
    ).fetchone()[0]
    assert n_pos == 2 * spec["rounds"] * len(spec["cars"])
    every = spec["cams"] + spec["cars"] + spec["sensors"]
    online = pg.execute(
        "SELECT count(*) FROM devices WHERE id = ANY(%s::bpchar[]) AND status = 'online'",
        (every,),
    ).fetchone()[0]
    assert online == len(every)


def test_repeats_in_two_workers_at_once_merge_into_one_alarm(db_url, make_device, pg) -> None:
    """Two workers of a shared subscription store a repeat of the same open alarm in
    overlapping transactions: the second waits for the first's commit (the (device, kind)
    merge lock) and merges into the alarm it opened, instead of opening a second one."""
    import threading

    import psycopg

    from ingest.alarms import AlarmIn, store_alarms
    from tests.ingest.conftest import wait_for

    d = make_device("alarm_input")
    url = db_url.replace("postgresql+psycopg://", "postgresql://")
    now = time.time()
    first, second = psycopg.connect(url), psycopg.connect(url)
    done: list[str] = []

    def other_worker() -> None:
        store_alarms(second, [AlarmIn(d, "w2-1", "door_forced", 2, now + 0.2)])
        second.commit()
        done.append("w2")

    try:
        store_alarms(first, [AlarmIn(d, "w1-1", "door_forced", 2, now)])  # not committed yet
        t = threading.Thread(target=other_worker)
        t.start()
        waiting = wait_for(
            lambda: (
                bool(done)
                or pg.execute(
                    "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory' "
                    "AND NOT granted",
                    (second.info.backend_pid,),
                ).fetchone()[0]
                == 1
            ),
            20,
        )
        assert waiting and not done, "the second worker should wait for the first's commit"
        first.commit()
        t.join(30)
        assert done == ["w2"]
    finally:
        first.close()
        second.close()
    rows = pg.execute(
        "SELECT repeat_count FROM alarms WHERE device_id = %s AND kind = 'door_forced'", (d,)
    ).fetchall()
    assert rows == [(2,)]
