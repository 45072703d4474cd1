"""Fleet simulator throughput: selector-driven paho links vs a thread-per-device baseline.

Runs against a private Mosquitto (own directory and port, password file and ACL written by
ingest.broker_acl), so it neither needs nor disturbs the project's services:

    .venv/bin/python -m bench.fleet_bench            # full run (about 4 minutes)
    .venv/bin/python -m bench.fleet_bench --quick    # small smoke run

Measures, with the same timetable (simulators.fleet_schedule) and payloads in every mode:
  * naive baseline: one paho client per device with its own loop_start() thread;
  * per-device mode (simulators.fleet): one connection per device, all driven from one selector;
  * pooled mode: 100,000 devices over a few hub connections (--connections N).
"Saturation" plays a stretch of simulated time with every event already due and reports
messages per second until the last one is in the kernel; "real time" plays the timetable at a
speed factor and reports how many events were handled more than 1 s late.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt

from gridwatch.secrets import device_key
from gridwatch.services import mosquitto_binary, plugin_path
from gridwatch.settings import get_settings
from hardware.contract.topics import topic
from hardware.credentials import device_password
from ingest.broker_acl import write_broker_files
from simulators.fleet import QOS, Fleet, FleetSummary
from simulators.fleet_model import FleetDevice, FleetOptions, synthesize_fleet
from simulators.fleet_schedule import ALARM, HEARTBEAT, POSITION, Schedule

SUFFIX = {HEARTBEAT: "heartbeat", POSITION: "position", ALARM: "alarm"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def private_broker(device_ids: list[str]):
    """A Mosquitto of our own with per-device passwords and the project's ACL."""
    binary = mosquitto_binary()
    if binary is None:
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    settings = get_settings()
    root = Path(tempfile.mkdtemp(prefix="gw-fleet-bench-"))
    port = _free_port()
    write_broker_files(
        root / "dynsec.json", root / "acl", settings=settings, devices=dict.fromkeys(device_ids, "")
    )
    (root / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\n"
        f"plugin {plugin_path()}\nplugin_opt_config_file {root / 'dynsec.json'}\n"
        f"acl_file {root / 'acl'}\n"
        "persistence false\nmax_keepalive 600\nmax_queued_messages 1000000\n"
        f"log_dest file {root / 'log'}\nconnection_messages false\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    proc = subprocess.Popen([str(binary), "-c", str(root / "mosquitto.conf")])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise SystemExit(f"private mosquitto did not start; see {root / 'log'}")
        yield port, settings
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _quiet(opts: FleetOptions) -> FleetOptions:
    """Same timetable in every mode: no outages or snapshots (JPEG cost is measured apart)."""
    return opts.model_copy(
        update={"unreliable_fraction": 0.0, "flapping_fraction": 0.0, "snapshot_fraction": 0.0}
    )


def _naive_clients(devices: list[FleetDevice], port: int, secret: str) -> list[mqtt.Client]:
    clients = []
    for d in devices:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=d.id)
        c.username_pw_set(d.id, device_password(d.id, secret))
        c.will_set(topic(d.id, "state"), b"offline", qos=1, retain=True)
        c.connect("127.0.0.1", port, 300)
        c.loop_start()
        clients.append(c)
    return clients


def _close_naive(clients: list[mqtt.Client]) -> None:
    for c in clients:
        c.disconnect()
        c.loop_stop()


def naive_ceiling(devices: list[FleetDevice], port: int, secret: str, wait_s: float = 5.0) -> int:
    """How many thread-per-device clients one process can keep connected (of len(devices))."""
    clients = _naive_clients(devices, port, secret)
    time.sleep(wait_s)
    connected = sum(c.is_connected() for c in clients)
    _close_naive(clients)
    return connected


def run_naive(devices: list[FleetDevice], port: int, secret: str, sim_s: float, seed: int) -> dict:
    """Baseline: a paho client and a network thread per device; the timetable as fast as it goes."""
    fds0, threads0 = _fds(), threading.active_count()
    t = time.monotonic()
    clients = _naive_clients(devices, port, secret)
    while not all(c.is_connected() for c in clients):
        if time.monotonic() - t > 120:
            raise SystemExit("naive baseline: clients did not connect in 120 s")
        time.sleep(0.05)
    connect_s = time.monotonic() - t
    fds, threads = _fds() - fds0, threading.active_count() - threads0
    t0 = time.time()
    sched = Schedule(devices, _quiet(FleetOptions(seed=seed)), t0)
    start = time.monotonic()
    events = 0
    for ev in sched.due(t0 + sim_s):
        suffix = SUFFIX[ev.stream]
        if ev.stream == HEARTBEAT:
            payload = sched.heartbeat(ev, time.time())
        elif ev.stream == POSITION:
            payload = sched.position(ev, time.time())
        else:
            payload = sched.alarm(ev, time.time(), "naive")[1]
        clients[ev.dev].publish(topic(devices[ev.dev].id, suffix), payload, QOS[suffix])
        events += 1
    while any(c.want_write() for c in clients):  # until every message is in the kernel
        time.sleep(0.005)
    wall = time.monotonic() - start
    _close_naive(clients)
    return {
        "mode": "naive thread/device",
        "devices": len(devices),
        "connect_s": connect_s,
        "events": events,
        "wall_s": wall,
        "rate": events / wall,
        "fds": fds,
        "threads": threads,
    }


def run_fleet(
    devices: list[FleetDevice],
    port: int,
    settings,
    *,
    speed: float,
    sim_s: float,
    seed: int,
    connections: int | None,
) -> FleetSummary:
    opts = _quiet(FleetOptions(seed=seed, speed=speed, duration_s=sim_s, run_tag="bench"))
    fleet = Fleet(
        devices,
        opts,
        "127.0.0.1",
        port,
        secret=device_key(settings),
        hub=settings.hub_credentials("simulator"),
        connections=connections,
    )
    return fleet.run(connect_timeout_s=600, drain_s=120)


def _row(label: str, s: FleetSummary, note: str = "") -> dict:
    saturated = note.startswith("saturation")  # everything due at once: lateness means nothing
    return {
        "mode": label,
        "devices": s.devices,
        "connect_s": s.connect_wall_s,
        "events": s.events,
        "wall_s": s.wall_s,
        "rate": s.events / s.wall_s if s.wall_s else 0.0,
        "behind": None if saturated else s.behind_fraction,
        "lag_p99": None if saturated else s.lag_p99_s,
        "note": note,
    }


def snapshot_rate(seconds: float = 3.0) -> float:
    """JPEG snapshots (320x180, with a fault every third) generated per second, one core."""
    from simulators.fleet_snapshots import SnapshotMaker

    maker = SnapshotMaker(1)
    faults = [None, None, "blur"]
    n, t = 0, time.monotonic()
    while time.monotonic() - t < seconds:
        maker.jpeg(n % 500, 1.7e9 + n * 60, faults[n % 3])
        n += 1
    return n / (time.monotonic() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--devices", type=int, default=100_000, help="pooled-mode fleet size")
    ap.add_argument(
        "--naive", type=int, default=300, help="baseline fleet size (paho threads cap ~340)"
    )
    ap.add_argument("--per-device", type=int, default=15_000, help="largest per-device fleet")
    ap.add_argument("--connections", type=int, default=8, help="pooled hub connections")
    ap.add_argument("--speed", type=float, default=10.0, help="real-time runs' speed factor")
    ap.add_argument("--seconds", type=float, default=30.0, help="wall seconds of real-time runs")
    ap.add_argument("--seed", type=int, default=28181)
    args = ap.parse_args()
    if args.quick:
        args.devices, args.naive, args.per_device, args.seconds = 5_000, 100, 1_000, 5.0

    big = synthesize_fleet(args.devices, seed=args.seed)
    small = synthesize_fleet(max(600, args.per_device), region="36012201", seed=args.seed)
    naive_devices = small[: args.naive]
    pd_devices = small[: args.per_device]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"RLIMIT_NOFILE soft {soft} hard {hard}; cores {os.cpu_count()}; load {os.getloadavg()}")
    rows: list[dict] = []
    with private_broker([d.id for d in small]) as (port, settings):
        sat_s = 600.0  # simulated seconds played at saturation
        probe = small[:600]
        ceiling = naive_ceiling(probe, port, device_key(settings))
        gc.collect()
        long_s = 36_000.0  # small fleets play 10 simulated hours, for enough messages to time
        naive = run_naive(naive_devices, port, device_key(settings), long_s, args.seed)
        rows.append({**naive, "behind": None, "lag_p99": None, "note": "saturation"})
        gc.collect()
        fds0 = _fds()
        s = run_fleet(
            naive_devices, port, settings, speed=1e5, sim_s=long_s, seed=args.seed, connections=None
        )
        rows.append(_row("per-device selector", s, "saturation, same devices as naive"))
        selector_same = rows[-1]
        print(f"(per-device selector left {_fds() - fds0} fds open after closing)")
        gc.collect()
        s = run_fleet(
            pd_devices,
            port,
            settings,
            speed=args.speed,
            sim_s=args.speed * args.seconds,
            seed=args.seed,
            connections=None,
        )
        rows.append(_row("per-device selector", s, f"real time x{args.speed:g}"))
        s = run_fleet(
            pd_devices, port, settings, speed=1e5, sim_s=sat_s, seed=args.seed, connections=None
        )
        rows.append(_row("per-device selector", s, "saturation"))
        gc.collect()
        s = run_fleet(
            big,
            port,
            settings,
            speed=args.speed,
            sim_s=args.speed * args.seconds,
            seed=args.seed,
            connections=args.connections,
        )
        rows.append(_row(f"pooled x{args.connections}", s, f"real time x{args.speed:g}"))
        s = run_fleet(
            big,
            port,
            settings,
            speed=1e5,
            sim_s=300.0,
            seed=args.seed,
            connections=args.connections,
        )
        rows.append(_row(f"pooled x{args.connections}", s, "saturation"))
        pooled_sat = rows[-1]
        demand_1x = s.events / 300.0

    print()
    print(
        f"{'mode':<22}{'devices':>9}{'connect s':>11}{'events':>10}{'wall s':>9}"
        f"{'msg/s':>10}{'behind':>9}{'p99 lag s':>11}  note"
    )
    for r in rows:
        behind = "-" if r.get("behind") is None else f"{r['behind']:.2%}"
        lag = "-" if r.get("lag_p99") is None else f"{r['lag_p99']:.3f}"
        print(
            f"{r['mode']:<22}{r['devices']:>9,}{r['connect_s']:>11.1f}{r['events']:>10,}"
            f"{r['wall_s']:>9.1f}{r['rate']:>10,.0f}{behind:>9}{lag:>11}  {r.get('note', '')}"
        )
    print()
    print(
        f"naive baseline used {naive['threads']:,} threads and {naive['fds']:,} fds for "
        f"{naive['devices']:,} devices ({naive['fds'] / naive['devices']:.1f} fds/device)"
    )
    print(
        f"per-device selector vs naive, same {naive['devices']:,} devices: "
        f"{selector_same['rate'] / naive['rate']:.1f}x the messages/s, "
        f"connects {naive['connect_s'] / max(selector_same['connect_s'], 1e-9):.1f}x faster"
    )
    print(
        f"{args.devices:,} devices need {demand_1x:,.0f} msg/s at 1x; pooled saturation "
        f"{pooled_sat['rate']:,.0f} msg/s keeps up to about x{pooled_sat['rate'] / demand_1x:.0f}"
    )
    print(
        f"naive ceiling: {ceiling} of {len(probe)} thread-per-device clients stayed connected "
        "(paho's thread loop uses select(), which fails on fds >= 1024; 3 fds per client)"
    )
    print(f"JPEG snapshots: {snapshot_rate():,.0f}/s on one core (320x180)")
    print(f"peak RSS {_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
