"""Ingest benchmark: a 100k-device fleet-like QoS 1 load (heartbeats, positions, alarms) through the
real Mosquitto into PostGIS, naive per-message worker vs the batched worker (1 and 2 workers on a
shared subscription), all on this machine. Prints msg/s, lost/duplicated and latency figures.
The bare mode (bench/ingest_bare.py) is the worker's MQTT side alone, acking without the
database: the batched worker's sustained rate is also printed as a share of it.

    .venv/bin/python -m bench.ingest_bench            # all modes (about 7 minutes)
    .venv/bin/python -m bench.ingest_bench --modes batched1@30000
    .venv/bin/python -m bench.ingest_bench --modes bare@30000,batched1@30000   # share of bare
    .venv/bin/python -m bench.ingest_bench --modes batched1@30000/0.4,batched2@45000/0.4

Publishes from its own pre-encoded MQTT 3.1.1 generator (hub credentials, many device topics) so
the load generator costs as little CPU as possible on a 2-core machine shared with broker,
database and worker(s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
# The naive baseline; one worker at the 30,000 msg/s target; two sharing the subscription at the
# same load; then the scaling pair with the same CPU budget per worker, both past saturation.
DEFAULT_MODES = (
    "bare@30000,naive@5000,batched1@30000,batched2@30000,batched1@30000/0.4,batched2@45000/0.4"
)
BENCH_DB = "gridwatch_bench"


# ------------------------------------------------------------------ minimal MQTT 3.1.1 publisher
def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, user: str, password: str) -> bytes:
    body = _str(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60)
    body += _str(client_id.encode()) + _str(user.encode()) + _str(password.encode())
    return b"\x10" + _varlen(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, pid: int) -> bytes:
    body = _str(topic) + struct.pack("!H", pid) + payload
    return b"\x32" + _varlen(len(body)) + body  # QoS 1


class Publisher:
    """One TCP connection publishing QoS 1; counts PUBACKs (4 bytes each) as they arrive."""

    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(f"bench-pub-{uuid.uuid4().hex[:8]}", user, password))
        ack = self.sock.recv(4)
        if len(ack) < 4 or ack[3] != 0:
            raise SystemExit(f"broker refused the bench publisher: {ack!r}")
        self.sock.setblocking(False)
        self.pid = 0
        self.sent = 0
        self.acked_bytes = 0

    def send(self, items: list[tuple[bytes, bytes]]) -> None:
        packets = []
        for topic, payload in items:
            self.pid = self.pid % 65535 + 1
            packets.append(publish_packet(topic, payload, self.pid))
        data = b"".join(packets)
        self.sock.setblocking(True)
        self.sock.sendall(data)
        self.sock.setblocking(False)
        self.sent += len(items)
        self.drain()

    def drain(self) -> None:
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.acked_bytes += len(chunk)
        except BlockingIOError:
            pass

    @property
    def acked(self) -> int:
        return self.acked_bytes // 4

    def outstanding(self) -> int:
        return self.sent - self.acked


# ------------------------------------------------------------------ per-worker CPU budget
class CpuBudget:
    """Put each worker process in its own cgroup with a CPU quota (cgroup v1 `cpu` or v2).

    On this 2-core machine the broker, PostgreSQL, the generator and the workers share both
    cores, so what a second worker adds is capped by the machine, not by the worker. Giving
    every worker the same budget (e.g. 0.4 CPU) makes the worker tier the bottleneck, which is
    how scaling out to more hosts behaves; the database and broker stay unlimited."""

    V1 = Path("/sys/fs/cgroup/cpu")
    V2 = Path("/sys/fs/cgroup")

    def __init__(self, cpus: float) -> None:
        why = self.unavailable()
        if why:
            raise SystemExit(why)
        self.cpus = cpus
        self.v2 = not (self.V1 / "cpu.cfs_quota_us").exists()
        self.root = self.V2 if self.v2 else self.V1
        self.made: list[Path] = []

    @classmethod
    def unavailable(cls) -> str | None:
        """Why per-worker CPU budgets cannot be set here, or None when they can."""
        if (cls.V1 / "cpu.cfs_quota_us").exists():
            root = cls.V1
        else:
            try:
                controllers = (cls.V2 / "cgroup.subtree_control").read_text().split()
            except OSError:
                controllers = []
            if "cpu" not in controllers:
                return "no cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 cpu.max)"
            root = cls.V2
        if not os.access(root, os.W_OK):
            return f"{root} is not writable (run as root)"
        return None

    def apply(self, pid: int, name: str) -> None:
        group = self.root / name
        group.mkdir(exist_ok=True)
        period = 100_000
        quota = int(self.cpus * period)
        if self.v2:
            (group / "cpu.max").write_text(f"{quota} {period}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        (group / "cgroup.procs").write_text(str(pid))
        self.made.append(group)

    def close(self) -> None:
        for group in self.made:
            try:
                group.rmdir()
            except OSError:
                pass


# ------------------------------------------------------------------ fleet and database
def wait_subscribed(
    host: str, port: int, user: str, password: str, topic: str, timeout: float = 120.0
) -> int:
    """Publish a heartbeat probe (MQTT 5, QoS 1) on `topic` until the broker's PUBACK says a
    subscriber matched it, i.e. the worker has subscribed; returns how many probes reached the
    worker (1: the earlier ones were dropped by the broker).

    Before that the broker answers 0x10 "no matching subscribers" and drops the message, and
    the generator's MQTT 3.1.1 PUBACK cannot say so: a fixed sleep under load counted the
    alarms published before the worker's SUBSCRIBE as lost by ingest."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-probe-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(user, password)
    acks: dict[int, int] = {}
    client.on_publish = lambda c, u, mid, reason, props: acks.__setitem__(mid, reason.value)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    sent = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            body = b'{"ts":%.6f,"status":"ok"}' % time.time()
            info = client.publish(topic, body, qos=1)
            sent += 1
            wait_until = time.monotonic() + 5
            while info.mid not in acks and time.monotonic() < wait_until:
                time.sleep(0.01)
            if acks.get(info.mid) == 0:
                return 1
            time.sleep(0.2)
        raise SystemExit(f"no subscriber on {topic} after {timeout:.0f} s: did the worker start?")
    finally:
        client.disconnect()
        client.loop_stop()


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GRIDWATCH_DB_NAME"] = BENCH_DB
    env.setdefault("GRIDWATCH_LOG_LEVEL", "WARNING")
    # Benchmark sessions must not outlive the run: the broker would queue every later
    # message for them.
    env["GRIDWATCH_INGEST_SESSION_EXPIRY_S"] = "60"
    env["GRIDWATCH_INGEST_DISCARD_SESSION_ON_EXIT"] = "true"
    return env


def device_ids(n: int) -> dict[str, list[str]]:
    """n ids: 60% cameras (heartbeats), 30% trackers/patrol cars (positions), 10% alarm inputs."""
    from hardware.gbid import compose

    split = {"ip_camera": (132, int(n * 0.6)), "patrol_car": (138, int(n * 0.3))}
    split["alarm_input"] = (134, n - split["ip_camera"][1] - split["patrol_car"][1])
    out: dict[str, list[str]] = {}
    for kind, (type_code, count) in split.items():
        prefix = compose("360121", type_code, 1).code[:14]
        out[kind] = [f"{prefix}{i:06d}" for i in range(1, count + 1)]
    return out


def prepare_db(url: str, fleet: dict[str, list[str]]) -> None:
    from gridwatch.db import migrate

    migrate(url)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        have = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        want = sum(len(v) for v in fleet.values())
        if have != want:
            conn.execute("TRUNCATE devices CASCADE")
            with conn.cursor().copy(
                "COPY devices (id, type_code, kind, position, heartbeat_s) FROM STDIN"
            ) as copy:
                rnd = random.Random(7)
                for kind, ids in fleet.items():
                    for i in ids:
                        lon, lat = 115.7 + rnd.random() * 0.4, 28.5 + rnd.random() * 0.4
                        copy.write_row((i, i[10:13], kind, f"SRID=4326;POINT({lon} {lat})", 60))
        conn.commit()


def reset_db(url: str) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(
            "TRUNCATE alarms, alarm_messages, alarm_events, alarm_cameras, positions, hub_events, "
            "device_presence, dead_letters, pending_devices, geofence_events CASCADE"
        )
        # Steady state: the fleet is online already (a cold start, where every device's first
        # message is an online transition with its own interval and event, is not measured here).
        conn.execute(
            "UPDATE devices SET status = 'online', last_seen = now(), last_position = NULL, "
            "last_position_at = NULL"
        )
        conn.execute(
            "INSERT INTO device_presence (device_id, started_at) SELECT id, now() FROM devices"
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE devices, device_presence")
        # The emptied tables analyzed empty, as autovacuum leaves them on a fresh install (and
        # did here, at random, seconds after a reset): the run must not depend on whether
        # autovacuum happened to come by before it.
        conn.execute(
            "ANALYZE alarms, alarm_messages, alarm_events, alarm_cameras, positions, hub_events"
        )


def db_counts(url: str, tag: str) -> tuple[int, int, int]:
    """(alarm messages, sum of repeat counts, positions) of this run's tag."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        a = conn.execute(
            "SELECT count(*) FROM alarm_messages WHERE msg_id LIKE %s", (tag + "-%",)
        ).fetchone()[0]
        r = conn.execute("SELECT coalesce(sum(repeat_count), 0) FROM alarms").fetchone()[0]
        p = conn.execute("SELECT count(*) FROM positions").fetchone()[0]
        return int(a), int(r), int(p)


def lost_seq_ranges(url: str, tag: str, published: int, most: int = 8) -> list[str]:
    """Which alarms (by their sequence number 1..published) are not in the database, as ranges
    ("1-97"): lost at the start, the end or spread tells where to look."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        got = {
            int(m.rsplit("-", 1)[1])
            for (m,) in conn.execute(
                "SELECT msg_id FROM alarm_messages WHERE msg_id LIKE %s", (tag + "-%",)
            )
        }
    out: list[str] = []
    start = None
    for seq in range(1, published + 2):
        missing = seq <= published and seq not in got
        if missing and start is None:
            start = seq
        elif not missing and start is not None:
            out.append(f"{start}-{seq - 1}" if seq - 1 > start else str(start))
            start = None
    return out[:most] + ([f"... {len(out) - most} more ranges"] if len(out) > most else [])


class EventBusProbe:
    """LISTENs on gw_events and measures publish -> event-bus latency of alarm.new events."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        )
        self.conn.execute("LISTEN gw_events")
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from datetime import datetime

        while not self.stop.is_set():
            got: list[tuple[int, float]] = []
            for n in self.conn.notifies(timeout=0.2, stop_after=2000):
                got.append((int(n.payload), time.time()))
            if not got:
                continue
            arrived = dict(got)
            rows = self.conn.execute(
                "SELECT id, payload->>'raised_at' FROM hub_events WHERE id = ANY(%s) "
                "AND kind = 'alarm.new'",
                (list(arrived),),
            ).fetchall()
            for eid, raised in rows:
                self.latencies.append(arrived[eid] - datetime.fromisoformat(raised).timestamp())

    def close(self) -> list[float]:
        self.stop.set()
        self.thread.join(5)
        self.conn.close()
        return self.latencies


# ------------------------------------------------------------------ one run
def _received(stats_files: list[Path]) -> int:
    """Messages the workers report so far (the bare subscriber rewrites its file every 0.25 s)."""
    total = 0
    for f in stats_files:
        try:
            total += json.loads(f.read_text())["counts"].get("messages", 0)
        except (OSError, ValueError):
            pass
    return total


def run_mode(mode: str, workers: int, args, fleet, url: str, hub: tuple[str, str]) -> dict:
    from gridwatch.settings import get_settings

    reset_db(url)
    budget = CpuBudget(args.worker_cpu) if args.worker_cpu else None
    tag = f"b{uuid.uuid4().hex[:6]}"
    group = f"bench{tag}"
    env = bench_env()
    stats_files = [Path(f"/tmp/gw-bench-{tag}-{i}.json") for i in range(workers)]
    procs = []
    for i in range(workers):
        if mode in ("naive", "bare"):
            cmd = [
                sys.executable,
                "-m",
                f"bench.ingest_{mode}",
                "--share-group",
                group,
                "--client-id",
                f"{group}-{i}",
                "--stats-file",
                str(stats_files[i]),
            ]
        else:
            cmd = [
                sys.executable,
                "-c",
                "import sys; from ingest.cli import ingest_cmd; "
                "ingest_cmd(client_id=sys.argv[1], share_group=sys.argv[2], no_share=False, "
                "stats_file=__import__('pathlib').Path(sys.argv[3]), max_seconds=None)",
                f"{group}-{i}",
                group,
                str(stats_files[i]),
            ]
        log = open(f"/tmp/gw-bench-{tag}-{i}.log", "wb")  # noqa: SIM115 - lives with the worker
        procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=log))
        if budget is not None:
            budget.apply(procs[-1].pid, f"gw-bench-{tag}-{i}")
    probe = EventBusProbe(url)
    host, port = get_settings().mqtt_endpoint()
    cams, cars, sensors = fleet["ip_camera"], fleet["patrol_car"], fleet["alarm_input"]
    from hardware.contract.topics import ALARM, HEARTBEAT, POSITION, device_topic

    # publish only once the worker(s) subscribed (a fixed sleep lost the first seconds' alarms
    # at the broker under load; they were counted as lost by ingest)
    probes = wait_subscribed(host, port, *hub, device_topic(cams[0], HEARTBEAT))
    pubs = [Publisher(host, port, *hub) for _ in range(args.connections)]
    topics_hb = [device_topic(d, HEARTBEAT).encode() for d in cams]
    topics_pos = [device_topic(d, POSITION).encode() for d in cars]
    topics_al = [device_topic(d, ALARM).encode() for d in sensors]
    rnd = random.Random(11)
    published = {"heartbeat": 0, "position": 0, "alarm": 0, "probe": probes}
    tick = 0.01
    per_tick = max(1, int(args.rate * tick))
    t_start = time.monotonic()
    next_tick = t_start
    seq = 0
    throttled = 0
    while time.monotonic() - t_start < args.seconds:
        now_us = int(time.time() * 1e6)
        items: list[tuple[bytes, bytes]] = []
        for j in range(per_tick):
            # unique per message: (device, ts) is a key. Integer microseconds: "%.6f" of the
            # float now + j * 1e-6 could print two neighbours alike (float rounding), and when
            # both went to the same car the second position was counted as lost.
            ts = b"%d.%06d" % divmod(now_us + j, 1_000_000)
            r = rnd.random()
            if r < 0.7:
                items.append(
                    (topics_hb[rnd.randrange(len(cams))], b'{"ts":' + ts + b',"status":"ok"}')
                )
                published["heartbeat"] += 1
            elif r < 0.95:
                lon, lat = 115.7 + rnd.random() * 0.4, 28.5 + rnd.random() * 0.4
                items.append(
                    (
                        topics_pos[rnd.randrange(len(cars))],
                        b'{"ts":%s,"lon":%.6f,"lat":%.6f,"speed":%.1f}'
                        % (ts, lon, lat, rnd.random() * 60),
                    )
                )
                published["position"] += 1
            else:
                seq += 1
                items.append(
                    (
                        topics_al[rnd.randrange(len(sensors))],
                        b'{"msg_id":"%s-%d","ts":%s,"kind":"intrusion","severity":2}'
                        % (tag.encode(), seq, ts),
                    )
                )
                published["alarm"] += 1
        k = len(pubs)
        for i, p in enumerate(pubs):
            chunk = items[i::k]
            if chunk:
                p.send(chunk)
        next_tick += tick
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            throttled += 1
    t_pub_end = time.monotonic()
    offered_s = t_pub_end - t_start
    # wait for the broker to ack everything, then for the worker(s) to commit everything
    deadline = time.monotonic() + 30
    while any(p.outstanding() for p in pubs) and time.monotonic() < deadline:
        for p in pubs:
            p.drain()
        time.sleep(0.05)
    unacked = sum(p.outstanding() for p in pubs)
    want_pos = published["position"]
    last, stable_since = None, time.monotonic()
    drain_deadline = time.monotonic() + args.drain
    t_done = time.monotonic()
    complete = False
    while time.monotonic() < drain_deadline:
        # the bare subscriber stores nothing: it is done when it has received everything
        counts = (_received(stats_files),) if mode == "bare" else db_counts(url, tag)
        # (probes sent before the subscription matched nobody: they are not expected)
        if mode == "bare" and counts[0] >= sum(published.values()) - published["probe"]:
            t_done = time.monotonic()
            complete = True
            break
        if mode != "bare" and counts[0] >= published["alarm"] and counts[2] >= want_pos:
            t_done = time.monotonic()
            complete = True
            break
        if counts != last:
            last, stable_since, t_done = counts, time.monotonic(), time.monotonic()
        elif time.monotonic() - stable_since > 30:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    for p in procs:
        p.terminate()
    stop_timeouts = 0
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:  # a worker slow to stop must not lose the run's figures
            p.kill()
            p.wait(10)
            stop_timeouts += 1
    if budget is not None:
        budget.close()
    bus = probe.close()
    alarms_in, repeats, positions_in = db_counts(url, tag)
    if mode == "bare":  # nothing is stored; what was received is what counts
        alarms_in = repeats = published["alarm"]
        positions_in = want_pos
    stats = [json.loads(f.read_text()) for f in stats_files if f.exists()]
    lat: dict[str, list[float]] = {}
    received = 0
    for s in stats:
        received += s["counts"].get("messages", 0)
        for k2, v in s["latencies"].items():
            lat.setdefault(k2, []).extend(v)
    total = sum(published.values())
    span = t_done - t_start
    # Stopped while the worker was still behind (under load), the rest was still queued at the
    # broker, and the bench's worker ends its session (GRIDWATCH_INGEST_DISCARD_SESSION_ON_EXIT,
    # bench_env): that is not stored, not lost by ingest. Lost means: delivered to the worker
    # (or the drain completed) and still not in the database.
    caught_up = complete or received >= total
    unstored = published["alarm"] - alarms_in

    def pct(v: list[float], q: float) -> float | None:
        return round(float(np.percentile(np.array(v), q)) * 1000, 1) if v else None

    all_lat = [x for v in lat.values() for x in v]
    return {
        "mode": mode,
        "workers": workers,
        "worker_cpu": args.worker_cpu or None,
        "published": published,
        "offered_msg_s": round(total / offered_s),
        "sustained_msg_s": round(min(received, total) / span) if span > 0 else 0,
        "drain_s": round(t_done - t_pub_end, 2),
        "received_by_workers": received,
        "alarms_published": published["alarm"],
        "alarms_in_db": alarms_in,
        "alarms_lost": unstored if caught_up else None,
        "alarms_unstored_at_stop": 0 if caught_up else unstored,
        "drain_complete": complete,
        "worker_stop_timeouts": stop_timeouts,
        "broker_unacked": unacked,
        "alarms_lost_seq": lost_seq_ranges(url, tag, published["alarm"]),
        "alarms_duplicated": repeats - alarms_in,
        "positions_lost": want_pos - positions_in,
        "heartbeats_lost": max(0, total - received),
        "p50_commit_ms": pct(all_lat, 50),
        "p99_commit_ms": pct(all_lat, 99),
        "p99_alarm_commit_ms": pct(lat.get("alarm", []), 99),
        "p50_bus_ms": pct(bus, 50),
        "p99_bus_ms": pct(bus, 99),
        "generator_behind_ticks": throttled,
        "worker_logs": [f"/tmp/gw-bench-{tag}-{i}.log" for i in range(workers)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=30_000, help="offered msg/s")
    ap.add_argument(
        "--naive-rate", type=int, default=3_000, help="offered msg/s to the naive worker"
    )
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--drain", type=float, default=120.0)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument(
        "--modes",
        default=DEFAULT_MODES,
        help="comma list of bare|naive|batched1|batched2, each optionally @rate (offered msg/s) and "
        "/cpu (CPUs per worker, see --worker-cpu)",
    )
    ap.add_argument(
        "--worker-cpu",
        type=float,
        default=0.0,
        help="give every worker process this many CPUs (cgroup quota; 0: unlimited) to measure "
        "how throughput grows with workers when the workers, not this machine, are the limit",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with own_services("bench", 25442, 21893, args.devices) as (url, fleet, hub):
        results = _run_modes(args, url, fleet, hub)
    if not args.json:
        _report(results)


@contextmanager
def own_services(
    name: str, pg_port: int, mqtt_port: int, devices: int
) -> Iterator[tuple[str, dict[str, list[str]], tuple[str, str]]]:
    """A bench's own PostGIS and Mosquitto (.gridwatch/<name>, own ports unless GRIDWATCH_* say
    otherwise), its database holding `devices` registered devices: (url, fleet, simulator's
    hub account) while it runs; the services stopped after.

    Own ones, not the demo's: the demo's broker may hold the persistent session of a stopped
    ingest worker, which would queue a copy of every bench message (up to max_queued_messages),
    and Mosquitto writes its whole state to disk every 30 s — a 200 MB snapshot stalled
    delivery for ~0.3 s."""
    os.environ["GRIDWATCH_DB_NAME"] = BENCH_DB
    os.environ.setdefault("GRIDWATCH_HOME", str(ROOT / ".gridwatch" / name))
    os.environ.setdefault("GRIDWATCH_PG_PORT", str(pg_port))
    os.environ.setdefault("GRIDWATCH_MQTT_PORT", str(mqtt_port))
    from gridwatch.services import services_down, services_up
    from gridwatch.settings import get_settings
    from ingest.broker_acl import DynsecAccounts

    settings = get_settings()
    services_up(settings, DynsecAccounts(settings))
    try:
        url = settings.db_url()
        fleet = device_ids(devices)
        prepare_db(url, fleet)
        yield url, fleet, settings.hub_credentials("simulator")
    finally:
        services_down(settings)


def _run_modes(
    args: argparse.Namespace, url: str, fleet: dict[str, list[str]], hub: tuple[str, str]
) -> list[dict]:
    results = []
    default_rate, default_cpu = args.rate, args.worker_cpu
    for spec in args.modes.split(","):
        spec, _, cpu = spec.partition("/")
        mode, _, rate = spec.partition("@")
        args.rate = int(rate) if rate else (args.naive_rate if mode == "naive" else default_rate)
        args.worker_cpu = float(cpu) if cpu else default_cpu
        why = CpuBudget.unavailable() if args.worker_cpu else None
        if why:
            print(f"skipping {spec}/{cpu or args.worker_cpu}: {why}", file=sys.stderr, flush=True)
            continue
        if mode in ("naive", "bare"):
            results.append(run_mode(mode, 1, args, fleet, url, hub))
        elif mode.startswith("batched"):
            results.append(run_mode("batched", int(mode[-1]), args, fleet, url, hub))
        print(json.dumps(results[-1]), flush=True)
    return results


def _report(results: list[dict]) -> None:
    cols = [
        "mode",
        "workers",
        "worker_cpu",
        "offered_msg_s",
        "sustained_msg_s",
        "drain_s",
        "drain_complete",
        "alarms_lost",
        "alarms_unstored_at_stop",
        "broker_unacked",
        "alarms_duplicated",
        "positions_lost",
        "heartbeats_lost",
        "p50_commit_ms",
        "p99_commit_ms",
        "p99_alarm_commit_ms",
        "p50_bus_ms",
        "p99_bus_ms",
    ]
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(str(r[c]) for c in cols))
    for r in results:
        if r["workers"] < 2:
            continue
        ones = [
            o
            for o in results
            if o["mode"] == r["mode"] and o["workers"] == 1 and o["worker_cpu"] == r["worker_cpu"]
        ]
        # Prefer the 1-worker run at the same offered rate; else the one that took the most.
        same = [
            o
            for o in ones
            if abs(o["offered_msg_s"] - r["offered_msg_s"]) <= 0.01 * r["offered_msg_s"]
        ]
        one = (same or sorted(ones, key=lambda o: -o["sustained_msg_s"]) or [None])[0]
        if one and one["sustained_msg_s"]:
            saturated = one["sustained_msg_s"] < 0.97 * one["offered_msg_s"] or one["drain_s"] > 1
            print(
                f"{r['mode']} x{r['workers']} (worker cpu {r['worker_cpu'] or 'unlimited'}): "
                f"{r['sustained_msg_s']} msg/s at {r['offered_msg_s']} offered = "
                f"{r['sustained_msg_s'] / one['sustained_msg_s']:.2f}x one worker's "
                f"{one['sustained_msg_s']} at {one['offered_msg_s']} offered"
                + (" (one worker saturated: a capacity ratio)" if saturated else "")
            )
    bare = next((r for r in results if r["mode"] == "bare"), None)
    for r in results:
        if bare and r["mode"] == "batched" and bare["sustained_msg_s"]:
            share = r["sustained_msg_s"] / bare["sustained_msg_s"]
            print(
                f"batched x{r['workers']} (worker cpu {r['worker_cpu'] or 'unlimited'}): "
                f"{r['sustained_msg_s']} msg/s = {share:.0%} of the bare subscriber's "
                f"{bare['sustained_msg_s']} msg/s (offered {r['offered_msg_s']} / "
                f"{bare['offered_msg_s']})"
            )
    base = next((r for r in results if r["mode"] == "naive"), None)
    for r in results:
        if base and r is not base and r is not bare and base["sustained_msg_s"]:
            print(
                f"{r['mode']} x{r['workers']}: {r['sustained_msg_s'] / base['sustained_msg_s']:.1f}x the naive worker's sustained rate"
            )


if __name__ == "__main__":
    main()
