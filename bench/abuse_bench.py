"""Abuse benchmark: one hostile device beside the normal fleet. The other devices' alarm latency
(publish -> alarm.new on the event bus) without the abuser (baseline), with it (the worker's
fair share on), and with it and fair share off (what the controls prevent), in one run.

    .venv/bin/python -m bench.abuse_bench                       # about 2 minutes
    .venv/bin/python -m bench.abuse_bench --rate 5000 --seconds 20 --abuse alarms@4750

Abuse kinds: `alarms@N` (N alarms/s of distinct kinds from one device, the issue's attack),
`big@N` (N payloads/s of 250 kB alarms from one device). Uses bench/ingest_bench.py's fleet,
database reset and publisher, on its own PostGIS and Mosquitto (GRIDWATCH_HOME
.gridwatch/abuse-bench, ports 23403/23413 unless set).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import psycopg

from bench.ingest_bench import (
    Publisher,
    bench_env,
    own_services,
    reset_db,
    wait_subscribed,
)

ROOT = Path(__file__).resolve().parent.parent


class AlarmLatency:
    """LISTENs on gw_events: publish -> alarm.new latency per device (raised_at is the ts the
    device put in its alarm, i.e. the publish time)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        )
        self.conn.execute("LISTEN gw_events")
        self.seen: list[tuple[str, str, float]] = []  # (device_id, kind, latency s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            got = {
                int(n.payload): time.time()
                for n in self.conn.notifies(timeout=0.2, stop_after=2000)
            }
            if not got:
                continue
            rows = self.conn.execute(
                "SELECT id, payload->>'device_id', payload->>'kind', payload->>'raised_at' "
                "FROM hub_events WHERE id = ANY(%s) AND kind = 'alarm.new'",
                (list(got),),
            ).fetchall()
            for eid, device, kind, raised in rows:
                self.seen.append(
                    (device, kind, got[eid] - datetime.fromisoformat(raised).timestamp())
                )

    def close(self) -> list[tuple[str, str, float]]:
        self.stop.set()
        self.thread.join(5)
        self.conn.close()
        return self.seen


class DevicePublisher:
    """The abuser as a hostile device would be: connected with its own credentials, and when
    the broker drops it (its client disabled for a quarantine), retrying every `retry_s`;
    what it cannot send meanwhile is counted as unsent (a device keeps what was never acked)."""

    def __init__(self, host: str, port: int, user: str, password: str, retry_s: float = 0.2):
        self.addr, self.login, self.retry_s = (host, port), (user, password), retry_s
        self.pub: Publisher | None = None
        self.next_try = 0.0
        self.refused = self.unsent = self.dropped_connections = 0
        self.sent_before = self.acked_before = 0
        self._connect()

    def _connect(self) -> None:
        self.next_try = time.monotonic() + self.retry_s
        try:
            self.pub = Publisher(*self.addr, *self.login)
        except (SystemExit, OSError):
            self.pub = None
            self.refused += 1

    def _lost(self) -> None:
        if self.pub is not None:
            try:
                self.pub.drain()
            except OSError:
                pass
            self.sent_before += self.pub.sent
            self.acked_before += self.pub.acked
            self.pub.sock.close()
        self.pub = None
        self.dropped_connections += 1

    def send(self, items: list[tuple[bytes, bytes]]) -> None:
        if self.pub is None and time.monotonic() >= self.next_try:
            self._connect()
        if self.pub is None:
            self.unsent += len(items)
            return
        try:
            self.pub.send(items)
        except OSError:
            self.unsent += len(items)
            self._lost()

    def drain(self) -> None:
        if self.pub is not None:
            try:
                self.pub.drain()
            except OSError:
                self._lost()

    def outstanding(self) -> int:
        return self.pub.outstanding() if self.pub is not None else 0

    def close(self) -> None:
        if self.pub is not None:
            self.pub.sock.close()


def run_case(name: str, args, fleet, url: str, hub, abuse: str | None, fair: bool) -> dict:

    reset_db(url)
    tag = f"a{uuid.uuid4().hex[:6]}"
    env = bench_env()
    env["GRIDWATCH_INGEST_FAIR_SHARE"] = "true" if fair else "false"
    # "abuse-nogate": the worker's fair share without disabling the device at the broker
    env["GRIDWATCH_INGEST_BROKER_QUARANTINE"] = "false" if name.endswith("nogate") else "true"
    tree = ROOT
    if name.endswith("-before"):  # the worker of another checkout (--before), same everything else
        tree = Path(args.before).resolve()
        env["PYTHONPATH"] = str(tree)
    stats = Path(f"/tmp/gw-abuse-{tag}.json")
    log = open(f"/tmp/gw-abuse-{tag}.log", "wb")  # noqa: SIM115 - lives with the worker
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from ingest.cli import ingest_cmd; "
            "ingest_cmd(client_id=sys.argv[1], share_group=sys.argv[3] or None, no_share=not sys.argv[3], "
            "stats_file=__import__('pathlib').Path(sys.argv[2]), max_seconds=None)",
            f"abuse-{tag}",
            str(stats),
            args.share_group and f"{args.share_group}{tag}",
        ],
        env=env,
        cwd=tree,
        stdout=log,
        stderr=log,
    )
    try:
        return _drive(name, args, fleet, url, hub, abuse, fair, tag, stats, worker)
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(60)


def _drive(name, args, fleet, url, hub, abuse, fair, tag, stats, worker) -> dict:
    from gridwatch.settings import get_settings

    probe = AlarmLatency(url)
    host, port = get_settings().mqtt_endpoint()
    cams, cars, sensors = fleet["ip_camera"], fleet["patrol_car"], fleet["alarm_input"]
    wait_subscribed(host, port, *hub, f"gw/v1/{cams[0]}/heartbeat")  # not a fixed sleep
    pubs = [Publisher(host, port, *hub) for _ in range(args.connections)]
    abuser = sensors[0]
    normal_sensors = sensors[1:]
    topics_hb = [f"gw/v1/{d}/heartbeat".encode() for d in cams]
    topics_pos = [f"gw/v1/{d}/position".encode() for d in cars]
    topics_al = [f"gw/v1/{d}/alarm".encode() for d in normal_sensors]
    abuse_kind, _, abuse_rate = (abuse or "none@0").partition("@")
    abuse_pub: DevicePublisher | Publisher | None = None
    if abuse and args.abuser_login == "device":
        from ingest.broker_acl import current_device_password

        abuse_pub = DevicePublisher(host, port, abuser, current_device_password(abuser))
    elif abuse:
        abuse_pub = Publisher(host, port, *hub)
    abuse_topic = f"gw/v1/{abuser}/alarm".encode()
    big_pad = b"x" * 250_000
    rnd = random.Random(11)
    tick = 0.01
    per_tick = max(1, int(args.rate * tick))
    abuse_per_tick = float(abuse_rate or 0) * tick
    abuse_due = 0.0
    published = {"normal_alarms": 0, "abuse": 0, "other": 0}
    seq = 0
    t_start = time.monotonic()
    next_tick = t_start
    behind = 0
    while time.monotonic() - t_start < args.seconds:
        now_us = int(time.time() * 1e6)
        items: list[tuple[bytes, bytes]] = []
        for j in range(per_tick):
            ts = b"%d.%06d" % divmod(now_us + j, 1_000_000)
            r = rnd.random()
            if r < 0.7:
                items.append((rnd.choice(topics_hb), b'{"ts":' + ts + b',"status":"ok"}'))
                published["other"] += 1
            elif r < 0.95:
                lon, lat = 115.7 + rnd.random() * 0.4, 28.5 + rnd.random() * 0.4
                items.append(
                    (
                        rnd.choice(topics_pos),
                        b'{"ts":%s,"lon":%.6f,"lat":%.6f}' % (ts, lon, lat),
                    )
                )
                published["other"] += 1
            else:
                seq += 1
                # a distinct kind per alarm: every one is an alarm.new (none merged)
                items.append(
                    (
                        rnd.choice(topics_al),
                        b'{"msg_id":"%s-%d","ts":%s,"kind":"k%d","severity":2}'
                        % (tag.encode(), seq, ts, seq),
                    )
                )
                published["normal_alarms"] += 1
        k = len(pubs)
        for i, p in enumerate(pubs):
            chunk = items[i::k]
            if chunk:
                p.send(chunk)
        if abuse_pub is not None:
            abuse_due += abuse_per_tick
            burst = []
            while abuse_due >= 1:
                abuse_due -= 1
                seq += 1
                ts = b"%d.%06d" % divmod(now_us, 1_000_000)
                detail = b',"detail":{"pad":"%s"}' % big_pad if abuse_kind == "big" else b""
                burst.append(
                    (
                        abuse_topic,
                        b'{"msg_id":"x%s-%d","ts":%s,"kind":"flood_%d","severity":1%s}'
                        % (tag.encode(), seq, ts, seq, detail),
                    )
                )
            if burst:
                abuse_pub.send(burst)
                published["abuse"] += len(burst)
        next_tick += tick
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            behind += 1
    # the broker's PUBACKs first (as bench/ingest_bench.py does: a publisher closed with
    # unread acks resets its connection, and what the broker had not read yet is gone)
    all_pubs = pubs + ([abuse_pub] if abuse_pub else [])
    deadline = time.monotonic() + 30
    while any(p.outstanding() for p in all_pubs) and time.monotonic() < deadline:
        for p in all_pubs:
            p.drain()
        time.sleep(0.05)
    unacked = sum(p.outstanding() for p in all_pubs)
    # let the worker catch up (the normal alarms must all arrive), then stop it
    deadline = time.monotonic() + args.drain
    normal_seen = 0
    while time.monotonic() < deadline:
        normal_seen = sum(1 for d, _, _ in list(probe.seen) if d != abuser)
        if normal_seen >= published["normal_alarms"]:
            break
        time.sleep(0.2)
    t_drained = time.monotonic() - t_start - args.seconds
    worker.terminate()
    worker.wait(60)
    seen = probe.close()
    for p in pubs:
        p.sock.close()
    refused = unsent = 0
    if isinstance(abuse_pub, DevicePublisher):
        refused, unsent = abuse_pub.refused, abuse_pub.unsent
        abuse_pub.close()
    elif abuse_pub is not None:
        abuse_pub.sock.close()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        abuser_alarms = conn.execute(
            "SELECT count(*) FROM alarms WHERE device_id = %s AND kind <> 'device_flooding'",
            (abuser,),
        ).fetchone()[0]
        flooding = conn.execute(
            "SELECT count(*) FROM alarms WHERE device_id = %s AND kind = 'device_flooding'",
            (abuser,),
        ).fetchone()[0]
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    others = [lat for d, _, lat in seen if d != abuser]
    counts = json.loads(stats.read_text())["counts"] if stats.exists() else {}

    def pct(v: list[float], q: float) -> float | None:
        return round(float(np.percentile(np.array(v), q)) * 1000, 1) if v else None

    return {
        "case": name,
        "abuse": abuse,
        "fair_share": fair,
        "offered_msg_s": args.rate,
        "normal_alarms_published": published["normal_alarms"],
        "normal_alarms_seen": len(others),
        "others_p50_ms": pct(others, 50),
        "others_p95_ms": pct(others, 95),
        "others_p99_ms": pct(others, 99),
        "abuse_published": published["abuse"],
        "abuse_unsent": unsent,  # the broker had disconnected the abuser (quarantine)
        "abuse_refused_connects": refused,
        "abuser_alarms_opened": abuser_alarms,
        "device_flooding_alarms": flooding,
        "dead_letters": dead,
        "dropped": counts.get("dropped", 0),
        "drain_s": round(t_drained, 1),
        "broker_unacked": unacked,
        "generator_behind_ticks": behind,
        "worker_log": f"/tmp/gw-abuse-{tag}.log",
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--devices", type=int, default=20_000)
    ap.add_argument("--rate", type=int, default=1_000, help="the fleet's offered msg/s")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--drain", type=float, default=30.0)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--abuse", default="alarms@4750", help="alarms@N or big@N")
    ap.add_argument(
        "--cases",
        default="baseline,abuse,baseline2,abuse-unprotected",
        help="comma list of baseline (no abuser; repeat as baseline2... to see the noise), abuse "
        "(fair share on), abuse-nogate (fair share on, the device not disabled at the broker), "
        "abuse-unprotected (fair share off), abuse-before (fair share on, the worker of the "
        "checkout given by --before)",
    )
    ap.add_argument("--before", default=None, help="another checkout, for the abuse-before case")
    ap.add_argument(
        "--share-group", default="", help="worker on a shared subscription (default: plain)"
    )
    ap.add_argument(
        "--abuser-login",
        choices=("device", "hub"),
        default="device",
        help="the abuser connects with its own device credentials (default) or through the "
        "simulator's pooled hub account (the worker's drop alone then applies)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    with own_services("abuse-bench", 23403, 23413, args.devices) as (url, fleet, hub):
        from gridwatch.settings import get_settings
        from ingest.broker_acl import local_broker

        local_broker(get_settings()).reload()  # every device's own broker client (bulk: a rebuild)
        for case in args.cases.split(","):
            abuse = None if case.startswith("baseline") else args.abuse
            results.append(
                run_case(case, args, fleet, url, hub, abuse, case != "abuse-unprotected")
            )
            print(json.dumps(results[-1]), flush=True)
    if args.json:
        return
    base = next((r for r in results if r["case"].startswith("baseline")), None)
    print()
    print(
        "case                 p50 ms   p95 ms   p99 ms  p99 vs baseline  abuser alarms  quarantined"
    )
    for r in results:
        ratio = (
            f"{r['others_p99_ms'] / base['others_p99_ms']:.2f}x"
            if base and r["others_p99_ms"] and base["others_p99_ms"]
            else "-"
        )
        print(
            f"{r['case']:<20} {r['others_p50_ms']!s:>7} {r['others_p95_ms']!s:>8} "
            f"{r['others_p99_ms']!s:>8}  {ratio:>15}  {r['abuser_alarms_opened']:>13}  "
            f"{r['device_flooding_alarms']:>11}"
        )


if __name__ == "__main__":
    main()
