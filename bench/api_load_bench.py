"""API under load: read requests/s, 1,000 concurrent SSE clients, and a storm of wrong sign-ins.

One command, the demo included (it starts `gridwatch demo` with the GRIDWATCH_* settings given,
waits for its fleet, and stops it at the end; main's code, checked out from git into a temporary
directory, is the baseline of the reads in the same run):

    .venv/bin/python -m bench.api_load_bench --demo --baseline main [--workers 2] [--sse 1000]

Without --demo, a demo must be running already with the same GRIDWATCH_* settings (so this
reaches the demo's database and broker):

    .venv/bin/python -m bench.api_load_bench [--workers 2] [--seconds 10] [--sse 1000]

It starts `gridwatch serve` as a subprocess on a free port against the demo's database: with
--baseline, --workers workers of the baseline's code first (reads only), then this tree's code
once with one worker and once with --workers, and measures, each in the same run:

* reads: a mix of signed-in GETs (open alarms, device summary of a box, devices, regions, who am I)
  over 32 keep-alive connections for --seconds: requests/s, p50/p95; the trivial endpoint
  (/favicon.ico, no sign-in, no database) beside it is the framework's ceiling;
* SSE: --sse clients on /api/v1/stream at once (Authorization header), then 20 events emitted on
  the real bus (hub_events + NOTIFY, ingest.events.emit_events): share of clients that received
  every event and the delivery latency, while the read mix runs alongside;
* sign-in storm: 32 parallel wrong sign-ins (unknown names, so each one costs an argon2 check)
  while the read mix runs: read p95 with and without the storm.

With --cpu it measures instead the CPU each read of the mix costs the API process and PostgreSQL
(from /proc, so the load generator and other processes do not count): one worker, --requests
reads over 8 connections after a warm-up, in --rounds alternating runs of this tree and of the
baseline (--baseline REV from git, or --baseline-tree, another checkout) in the same run:

    .venv/bin/python -m bench.api_load_bench --cpu --baseline main [--requests 3000]

With --per-endpoint, the same for each endpoint of the mix alone (--requests reads each over 4
connections), to see which read costs what.

Every run prints the open alarms (the alarm page's counts once read them all); --open-alarms N
first adds open alarms until N are open, so runs compare at a backlog they chose.

The load generator is asyncio over raw sockets (no per-request client overhead) and runs on the
same 2 cores as the server and the demo: figures are lower bounds and noisy when others run.
On a machine shared with other busy processes, requests/s say more about the share of the CPU
the scheduler gives each API than about what a read costs: compare trees by --cpu there, and by
requests/s on a quiet machine. Every result records the load average. Results: bench/out/api_load_bench.json
(bench/out/api_cpu_bench.json for --cpu).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
USER, PASSWORD = "bench-reader", "bench-reader-pass-1"


def say(text: str) -> None:
    print(f"[api-bench] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Api:
    """`gridwatch serve --workers N` on a free port, stopped with SIGTERM."""

    def __init__(self, workers: int, tree: Path = ROOT) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = OUT / f"api_load_bench_api_w{workers}.log"
        argv = [sys.executable, "-m", "gridwatch", "serve", "--port", str(self.port)]
        argv += ["--workers", str(workers), "--log-level", "warning"]
        env = dict(os.environ, PYTHONPATH=str(tree))  # `tree`'s code, this venv
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(
                argv, cwd=tree, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_up(
            f"{self.base}/favicon.ico", self.proc, 90, f"the API did not come up; see {self.log}"
        )
        time.sleep(1.0 * workers)  # every worker up, not just the first

    def stop(self) -> None:
        stop_group(self.proc, signal.SIGTERM, 20)


def wait_up(url: str, proc: subprocess.Popen, within_s: float, failure: str) -> None:
    """Until `url` answers 200; RuntimeError(failure) if `proc` ends or time runs out first."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.3)


def stop_group(proc: subprocess.Popen, sig: int, within_s: float) -> None:
    """Send `sig` to the process group of `proc`; SIGKILL it if it is not gone within_s."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(within_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


# ---------------------------------------------------------------------------- a small HTTP/1.1 client


async def _request(reader, writer, method: str, path: str, headers: dict, body: bytes = b""):
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if body:
        head += f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    status = int((await reader.readline()).split()[1])
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding" and "chunked" in value:
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def read_load(port: int, paths: list[str], headers: dict, seconds: float, conns: int = 32):
    """`conns` keep-alive connections issuing GETs round-robin for `seconds`: count, latencies."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds

    async def one(i: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = i
        try:
            while time.monotonic() < stop_at:
                t = time.perf_counter()
                status = await _request(reader, writer, "GET", paths[n % len(paths)], headers)
                latencies.append(time.perf_counter() - t)
                if status != 200:
                    errors += 1
                n += 1
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(conns)))
    took = time.monotonic() - t0
    return summary(latencies, took, errors)


def summary(latencies: list[float], took: float, errors: int) -> dict:
    ordered = sorted(latencies) or [0.0]
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / took, 1),
        "p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
        "p95_ms": round(1000 * ordered[int(len(ordered) * 0.95)], 1),
        "errors": errors,
    }


async def login_storm(port: int, seconds: float, parallel: int = 32) -> dict:
    """`parallel` clients sending wrong sign-ins (unknown names: each costs an argon2 check)."""
    codes: dict[int, int] = {}
    stop_at = time.monotonic() + seconds

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        try:
            while time.monotonic() < stop_at:
                body = json.dumps({"username": f"storm-{i}-{n}", "password": "wrong-pass"}).encode()
                status = await _request(reader, writer, "POST", "/api/v1/auth/token", {}, body)
                codes[status] = codes.get(status, 0) + 1
                n += 1
        finally:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(parallel)))
    return {str(k): v for k, v in sorted(codes.items())}


# ---------------------------------------------------------------------------- SSE clients


async def sse_clients(port: int, token: str, n: int, events: int, emit, read) -> dict:
    """n stream clients; once all said hello, emit `events` events and time their delivery."""
    hello = asyncio.Event()
    ready = 0
    got: list[dict[int, float]] = [dict() for _ in range(n)]
    writers = []

    async def client(i: int) -> None:
        nonlocal ready
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        writers.append(writer)
        writer.write(
            f"GET /api/v1/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        status = int((await reader.readline()).split()[1])
        if status != 200:
            raise RuntimeError(f"stream answered {status}")
        said_hello = False
        while True:
            line = await reader.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").strip()
            if "event: hello" in text and not said_hello:
                said_hello = True
                ready += 1
                if ready == n:
                    hello.set()
            elif text.startswith("data: ") and '"bench_seq"' in text:
                seq = json.loads(text.split("data: ", 1)[1].split("\\r")[0].strip())
                got[i][seq["payload"]["bench_seq"]] = time.time()

    t0 = time.monotonic()
    tasks = [asyncio.create_task(client(i)) for i in range(n)]
    try:
        await asyncio.wait_for(hello.wait(), timeout=300)
    except TimeoutError:
        pass
    connect_s = time.monotonic() - t0
    say(f"  {ready}/{n} stream clients connected in {connect_s:.1f} s")
    sent: dict[int, float] = {}
    reads = asyncio.create_task(read())
    for seq in range(events):
        sent[seq] = await asyncio.to_thread(emit, seq)
        await asyncio.sleep(0.25)
    await asyncio.sleep(5)
    read_result = await reads
    for w in writers:
        w.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    delays = [got[i][s] - sent[s] for i in range(n) for s in sent if s in got[i]]
    complete = sum(1 for i in range(n) if len(got[i]) == events)
    ordered = sorted(delays) or [0.0]
    return {
        "clients": n,
        "connected": ready,
        "connect_s": round(connect_s, 1),
        "events": events,
        "clients_with_every_event": complete,
        "deliveries": len(delays),
        "delivery_p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
        "delivery_p95_ms": round(1000 * ordered[int(len(ordered) * 0.95)], 1),
        "delivery_max_ms": round(1000 * ordered[-1], 1),
        "reads_meanwhile": read_result,
    }


# ---------------------------------------------------------------------------- CPU per request

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _cpu_s(pids: list[int]) -> float:
    """utime + stime of these processes (those still there), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total * TICK_S


def _processes(match) -> list[int]:
    """The pids whose /proc stat fields (after the command name) satisfy match(fields)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if match(fields):
                out.append(int(entry.name))
    return out


def _group(pgid: int) -> list[int]:
    """The processes of a process group (the API and its workers)."""
    return _processes(lambda fields: int(fields[2]) == pgid)


def _postgres_backends(engine) -> list[int]:
    """Every process of the PostgreSQL server: the backends serving the API come and go with
    its pool, so the server's children are summed (background workers are small and equal)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        me = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    postmaster = int(Path(f"/proc/{me}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return _processes(lambda fields: int(fields[1]) == postmaster)


async def fixed_reads(port: int, paths: list[str], headers: dict, n: int, conns: int = 8) -> float:
    """Exactly n reads of the mix over `conns` keep-alive connections; seconds taken."""
    todo = iter(range(n))
    t0 = time.monotonic()

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in todo:
                status = await _request(reader, writer, "GET", paths[i % len(paths)], headers)
                if status != 200:
                    raise RuntimeError(f"{paths[i % len(paths)]} answered {status}")
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(conns)))
    return time.monotonic() - t0


def cpu_per_request(tree: Path, paths: list[str], engine, n: int) -> dict:
    """CPU ms per read of the API process group and of PostgreSQL, one worker on `tree`."""
    api = Api(1, tree)
    try:
        token = httpx.post(
            f"{api.base}/api/v1/auth/token",
            json={"username": USER, "password": PASSWORD},
            timeout=30,
        ).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        asyncio.run(fixed_reads(api.port, paths, h, max(200, n // 10)))  # warm-up
        group = _group(api.proc.pid)
        pg = _postgres_backends(engine)
        a0, d0 = _cpu_s(group), _cpu_s(pg)
        took = asyncio.run(fixed_reads(api.port, paths, h, n))
        pg_after = _postgres_backends(engine)
        a1, d1 = _cpu_s(group), _cpu_s(pg_after)
        # a backend born meanwhile counts whole (all its CPU is in the window); one that ended
        # meanwhile is lost: after the warm-up the pool keeps its connections (new_backends 0)
        new = [p for p in pg_after if p not in pg]
        return {
            "requests": n,
            "rps": round(n / took, 1),
            "api_cpu_ms": round(1000 * (a1 - a0) / n, 3),
            "db_cpu_ms": round(1000 * (d1 - d0) / n, 3),
            "new_backends": len(new),
        }
    finally:
        api.stop()


def cpu_per_endpoint(tree: Path, paths: list[str], engine, n: int) -> dict[str, dict]:
    """CPU ms per read of the API process group and of PostgreSQL for each endpoint of the mix
    alone (n reads over 4 connections each), one worker on `tree`."""
    api = Api(1, tree)
    try:
        h = sign_in(api)
        asyncio.run(fixed_reads(api.port, paths, h, max(200, n // 2)))  # warm-up
        out = {}
        for path in paths:
            group, pg = _group(api.proc.pid), _postgres_backends(engine)
            a0, d0 = _cpu_s(group), _cpu_s(pg)
            asyncio.run(fixed_reads(api.port, [path], h, n, conns=4))
            a1, d1 = _cpu_s(group), _cpu_s(_postgres_backends(engine))
            out[path] = {
                "api_cpu_ms": round(1000 * (a1 - a0) / n, 2),
                "db_cpu_ms": round(1000 * (d1 - d0) / n, 2),
            }
        return out
    finally:
        api.stop()


def run_per_endpoint(args, trees: dict[str, Path], paths: list[str], engine) -> dict:
    """--cpu --per-endpoint: each endpoint alone, this tree and the baseline alternating."""
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    for rnd in range(args.rounds):
        for name in ("baseline", "this") if rnd % 2 == 0 else ("this", "baseline"):
            runs[name].append(cpu_per_endpoint(trees[name], paths, engine, args.requests))
    medians: dict[str, dict] = {}
    for path in paths:
        medians[path] = {}
        for key in ("api_cpu_ms", "db_cpu_ms"):
            med = {k: sorted(r[path][key] for r in v)[len(v) // 2] for k, v in runs.items()}
            medians[path][key] = med
        m = medians[path]
        say(
            f"{path}: API {m['api_cpu_ms']['this']} / baseline {m['api_cpu_ms']['baseline']} ms, "
            f"PostgreSQL {m['db_cpu_ms']['this']} / baseline {m['db_cpu_ms']['baseline']} ms "
            f"(median of {args.rounds})"
        )
    return {"paths": paths, "rounds": args.rounds, "runs": runs, "medians": medians}


def run_cpu(args) -> dict:
    from gridwatch.db import get_engine

    engine = get_engine()
    paths, _ = prepare(engine)
    say(f"read mix: {paths}")
    say(f"open alarms: {open_alarms(engine, args.open_alarms)} (load average {loadavg()})")
    trees = {"this": ROOT, "baseline": Path(args.baseline_tree).resolve()}
    if args.per_endpoint:
        return run_per_endpoint(args, trees, paths, engine)
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    for rnd in range(args.rounds):
        for name in ("baseline", "this") if rnd % 2 == 0 else ("this", "baseline"):
            r = cpu_per_request(trees[name], paths, engine, args.requests)
            say(f"round {rnd + 1} {name}: {r}")
            runs[name].append(r)
    out: dict = {
        "paths": paths,
        "rounds": args.rounds,
        "runs": runs,
        "trees": {k: str(v) for k, v in trees.items()},
    }
    for key in ("api_cpu_ms", "db_cpu_ms", "rps"):
        med = {k: sorted(r[key] for r in v)[len(v) // 2] for k, v in runs.items()}
        out[f"median_{key}"] = med
        say(
            f"median {key}: this {med['this']} / baseline {med['baseline']} = {med['this'] / med['baseline']:.2f}x"
        )
    return out


# ---------------------------------------------------------------------------- the run


def prepare(engine) -> tuple[list[str], str | None]:
    """The bench user and a read mix over the data that is there (the demo county)."""
    from sqlalchemy import text

    from api.users import ensure_user

    with engine.begin() as conn:
        ensure_user(conn, USER, PASSWORD, "operator")
        box = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(position) e FROM (SELECT position FROM devices "
                "WHERE position IS NOT NULL LIMIT 500) d) s"
            )
        ).first()
        region = conn.execute(text("SELECT region_code FROM devices LIMIT 1")).scalar()
    bbox = ",".join(f"{v:.5f}" for v in box) if box and box[0] is not None else None
    paths = [
        "/api/v1/alarms?state=open&limit=50",
        "/api/v1/devices?limit=50",
        "/api/v1/regions?level=4&limit=50",
        "/api/v1/auth/me",
    ]
    if bbox:
        paths.append(f"/api/v1/devices/summary?bbox={bbox}")
    return paths, region


OPEN = "state IN ('new', 'acknowledged', 'dispatched')"


def open_alarms(engine, top_up_to: int = 0) -> int:
    """The open alarms in the database; with top_up_to, first add open alarms (kind
    'bench_backlog', spread over the devices, severities and the last hours, as ordinary
    INSERTs: every trigger sees them) until that many are open, so a run measures at a backlog
    it chose rather than at whatever the demo's unacknowledged alarms reached."""
    from sqlalchemy import text

    with engine.begin() as conn:
        have = conn.execute(text(f"SELECT count(*) FROM alarms WHERE {OPEN}")).scalar_one()
        if top_up_to > have:
            conn.execute(
                text(
                    "WITH d AS (SELECT array_agg(id ORDER BY id) ids FROM (SELECT id FROM devices "
                    "WHERE retired_at IS NULL ORDER BY id LIMIT 2000) x) "
                    "INSERT INTO alarms (device_id, msg_id, kind, severity, position, region_code, "
                    "raised_at, last_raised_at) "
                    "SELECT dv.id, 'bench-backlog-' || md5(random()::text || g), 'bench_backlog', "
                    "1 + g % 4, dv.position, dv.region_code, now() - g * interval '1 s', "
                    "now() - g * interval '1 s' FROM d, generate_series(1, :n) g "
                    "JOIN devices dv ON TRUE WHERE dv.id = d.ids[1 + g % cardinality(d.ids)]"
                ),
                {"n": top_up_to - have},
            )
            have = conn.execute(text(f"SELECT count(*) FROM alarms WHERE {OPEN}")).scalar_one()
    return have


def emitter(engine, region: str | None):
    from ingest.events import emit_events

    def emit(seq: int) -> float:
        with engine.begin() as conn:
            emit_events(conn, [("device.status", region, {"device_id": "bench", "bench_seq": seq})])
        return time.time()  # committed: NOTIFY goes out now

    return emit


def sign_in(api: Api) -> dict:
    token = httpx.post(
        f"{api.base}/api/v1/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def reads_only(api: Api, paths: list[str], args) -> dict:
    """The trivial endpoint and the read mix against one running API."""
    h = sign_in(api)
    return {
        "trivial": asyncio.run(read_load(api.port, ["/favicon.ico"], {}, args.seconds)),
        "reads": asyncio.run(read_load(api.port, paths, h, args.seconds)),
        "load": loadavg(),
    }


def measure(api: Api, workers: int, paths: list[str], region, engine, args, sse: int) -> dict:
    """Every measurement against one running API."""
    h = sign_in(api)
    token = h["Authorization"].split(" ", 1)[1]
    key = f"workers_{workers}"
    r: dict = reads_only(api, paths, args)
    say(f"{key} trivial endpoint: {r['trivial']}")
    say(f"{key} reads: {r['reads']} (load average {r['load']})")

    async def storm_and_reads():
        storm = asyncio.create_task(login_storm(api.port, args.seconds))
        reads = await read_load(api.port, paths, h, args.seconds)
        return reads, await storm

    r["reads_during_login_storm"], r["login_storm_codes"] = asyncio.run(storm_and_reads())
    say(f"{key} reads during 32 parallel wrong sign-ins: {r['reads_during_login_storm']}")
    say(f"{key} sign-in answers: {r['login_storm_codes']}")
    if sse:
        r["sse"] = asyncio.run(
            sse_clients(
                api.port,
                token,
                sse,
                20,
                emitter(engine, region),
                lambda: read_load(api.port, paths, h, args.seconds),
            )
        )
        say(f"{key} SSE: {r['sse']}")
    return r


def checkout(rev: str) -> Path:
    """The tree of git revision `rev` of this repository in a temporary directory."""
    where = Path(tempfile.mkdtemp(prefix="api-bench-baseline-"))
    atexit.register(shutil.rmtree, where, True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    say(f"baseline: {rev} ({_git('rev-parse', '--short', rev)}) in {where}")
    return where


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


class Demo:
    """`gridwatch demo` (services, county, fleet, ingest, vision, its API), stopped with Ctrl-C."""

    def __init__(self, settle_s: float) -> None:
        from gridwatch.settings import get_settings

        settings = get_settings()
        self.log = OUT / "api_load_bench_demo.log"
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gridwatch", "demo"],
                cwd=ROOT,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://{settings.api_host}:{settings.api_port}/favicon.ico"
        # a first run builds the county
        wait_up(url, self.proc, 900, f"the demo did not come up; see {self.log}")
        say(f"demo up; letting its fleet run {settle_s:.0f} s before measuring")
        time.sleep(settle_s)

    def stop(self) -> None:
        stop_group(self.proc, signal.SIGINT, 90)  # Ctrl-C: the demo stops everything it started


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(args) -> dict:
    from gridwatch.db import get_engine

    engine = get_engine()
    paths, region = prepare(engine)
    say(f"read mix: {paths}")
    results: dict = {"workers": args.workers, "seconds": args.seconds, "paths": paths}
    results["commit"] = _git("rev-parse", "--short", "HEAD")
    results["open_alarms_before"] = open_alarms(engine, args.open_alarms)
    say(f"open alarms: {results['open_alarms_before']}")
    results["load_before"] = loadavg()
    say(f"load average before: {results['load_before']}")
    if args.baseline:
        tree = checkout(args.baseline)
        api = Api(args.workers, tree)
        try:
            results["baseline"] = {"rev": args.baseline, **reads_only(api, paths, args)}
            say(f"baseline ({args.baseline}) {args.workers} workers: {results['baseline']}")
        finally:
            api.stop()
    for workers in (1, args.workers) if args.workers != 1 else (1,):
        api = Api(workers)
        try:
            sse = args.sse if workers == args.workers else 0
            results[f"workers_{workers}"] = measure(api, workers, paths, region, engine, args, sse)
        finally:
            api.stop()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sse", type=int, default=1000, help="concurrent stream clients (0: skip)")
    ap.add_argument("--cpu", action="store_true", help="CPU per read instead (see above)")
    ap.add_argument("--baseline-tree", default=None, help="--cpu: the checkout to compare with")
    ap.add_argument("--requests", type=int, default=3000, help="--cpu: reads per run")
    ap.add_argument("--rounds", type=int, default=3, help="--cpu: runs of each tree")
    ap.add_argument(
        "--per-endpoint",
        action="store_true",
        help="--cpu: each endpoint of the mix alone (--requests reads each), not the mix",
    )
    ap.add_argument(
        "--baseline", default=None, help="git revision whose API is the reads' baseline (e.g. main)"
    )
    ap.add_argument("--demo", action="store_true", help="start the demo, measure, stop it")
    ap.add_argument(
        "--open-alarms",
        type=int,
        default=0,
        help="first add open alarms until this many are open (the queue's backlog)",
    )
    ap.add_argument("--settle", type=float, default=60.0, help="--demo: seconds before measuring")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    raise_fd_limit()
    if args.cpu:
        if args.baseline and not args.baseline_tree:
            args.baseline_tree = str(checkout(args.baseline))
        if not args.baseline_tree:
            ap.error("--cpu needs --baseline REV or --baseline-tree (a checkout to compare with)")
        name = "api_cpu_endpoints.json" if args.per_endpoint else "api_cpu_bench.json"
        from gridwatch.db import get_engine

        result = run_cpu(args)
        result["open_alarms_after"] = open_alarms(get_engine())
        result["load_after"] = loadavg()
        say(f"open alarms after: {result['open_alarms_after']} (load {result['load_after']})")
        (OUT / name).write_text(json.dumps(result, indent=2))
        return 0
    demo = Demo(args.settle) if args.demo else None
    try:
        results = run(args)
    finally:
        if demo is not None:
            demo.stop()
    from gridwatch.db import get_engine

    results["open_alarms_after"] = open_alarms(get_engine()) if demo is None else None
    (OUT / "api_load_bench.json").write_text(json.dumps(results, indent=2))
    base = results.get("workers_1", {}).get("reads", {}).get("rps")
    best = results.get(f"workers_{args.workers}", {}).get("reads", {}).get("rps")
    if base and best:
        say(
            f"reads: {best} req/s with {args.workers} workers vs {base} with one ({best / base:.2f}x)"
        )
    before = results.get("baseline", {}).get("reads", {}).get("rps")
    if before and best:
        say(
            f"reads with {args.workers} workers: {best} req/s vs {before} with the baseline "
            f"{args.baseline} ({best / before:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
