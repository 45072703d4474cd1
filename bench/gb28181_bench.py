"""GB/T 28181 gateway benchmark: registrations/s and keepalives/s of one gateway process with
10,000 registered devices, and p99 alarm NOTIFY -> alarm committed, with baselines in the same
run: a bare UDP echo of the same datagrams (keepalives), direct MQTT into the same ingest
(alarms), parsing alone (in-process).

    .venv/bin/python -m bench.gb28181_bench [--devices 10000] [--count 50000] [--rates 5000]

Runs on PostGIS + Mosquitto of its own (.gridwatch/bench-gb28181, ports 23408/23418, SIP 23438),
started and stopped here. The gateway, the echo servers, the ingest worker and the keepalive
load generator are processes of their own; the generator sends prepared datagrams from one UDP
socket, either keeping `--window` keepalives in flight (the most a gateway answers: closed loop)
or paced at each of `--rates` (open loop). CPU seconds of each server come from /proc, so CPU
seconds per 1,000 keepalives are printed beside the wall-clock rates (the machine is shared).
The 10,000 devices are registered in the database as a gateway restart finds them
(`--register-rate N` registers them over SIP instead, REGISTER + digest, and measures that).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "gridwatch_bench_gb28181"
DOMAIN = "3601210000"
PASSWORD = "bench-sip-password"
TICKS = 0.01  # sender pacing period


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["GRIDWATCH_DB_NAME"] = BENCH_DB
    e.setdefault("GRIDWATCH_LOG_LEVEL", "WARNING")
    e["GRIDWATCH_SIP_PASSWORD"] = PASSWORD
    e["GRIDWATCH_SIP_DOMAIN"] = DOMAIN
    e["GRIDWATCH_INGEST_SESSION_EXPIRY_S"] = "60"
    e["GRIDWATCH_INGEST_DISCARD_SESSION_ON_EXIT"] = "true"
    e["GRIDWATCH_INGEST_SHARE_GROUP"] = ""
    e["GRIDWATCH_INGEST_CLIENT_ID"] = "bench-gb28181-ingest"
    return e


def pg_url() -> str:
    from gridwatch.settings import get_settings

    return get_settings().db_url().replace("postgresql+psycopg://", "postgresql://")


def prepare(n: int) -> list[str]:
    from gridwatch.db import migrate
    from hardware.gbid import compose

    prefix = compose("360121", 132, 1).code[:14]
    ids = [f"{prefix}{i:06d}" for i in range(1, n + 1)]
    migrate()
    with psycopg.connect(pg_url()) as conn:
        conn.execute("TRUNCATE devices CASCADE")
        with conn.cursor().copy(
            "COPY devices (id, type_code, kind, position, heartbeat_s) FROM STDIN"
        ) as copy:
            rnd = random.Random(7)
            for i in ids:
                lon, lat = 115.7 + rnd.random() * 0.4, 28.5 + rnd.random() * 0.4
                copy.write_row((i, "132", "ip_camera", f"SRID=4326;POINT({lon} {lat})", 3600))
        conn.execute("ANALYZE devices")
        conn.commit()
    return ids


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ messages
def head(method: str, dev: str, call_id: str, cseq: int, to: str, extra: str, body: bytes) -> bytes:
    return (
        f"{method} sip:{DOMAIN}@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK{call_id}{cseq}\r\n"
        f"From: <sip:{dev}@{DOMAIN}>;tag=b{cseq}\r\nTo: <sip:{to}@{DOMAIN}>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def keepalive(dev: str, sn: int) -> bytes:
    body = (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
        f"<SN>{sn}</SN>\r\n<DeviceID>{dev}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n"
    ).encode()
    return head(
        "MESSAGE",
        dev,
        f"k{sn}-{dev}",
        sn,
        DOMAIN,
        "Content-Type: Application/MANSCDP+xml\r\n",
        body,
    )


def alarm(dev: str, sn: int) -> bytes:
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 8 * 3600))
    body = (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Alarm</CmdType>\r\n'
        f"<SN>{sn}</SN>\r\n<DeviceID>{dev}</DeviceID>\r\n<AlarmPriority>1</AlarmPriority>\r\n"
        f"<AlarmMethod>5</AlarmMethod>\r\n<AlarmTime>{when}</AlarmTime>\r\n"
        "<Info><AlarmType>6</AlarmType></Info>\r\n</Notify>\r\n"
    ).encode("gb2312")
    return head(
        "MESSAGE",
        dev,
        f"a{sn}-{dev}",
        sn,
        DOMAIN,
        "Content-Type: Application/MANSCDP+xml\r\n",
        body,
    )


class Peer:
    """One UDP socket for every simulated device; a thread reads and answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.target = ("127.0.0.1", port)
        self.counts: dict[int, int] = {}
        self.ok_by_call: dict[str, float] = {}
        self.registered: set[str] = set()
        self.queries = 0
        self.stop = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        from gb28181 import sip
        from gb28181.digest import ha1, md5_hex, parse_challenge

        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                data, _ = self.sock.recvfrom(65_536)
            except TimeoutError:
                continue
            if data.startswith(b"SIP/2.0 "):
                status = int(data[8:11])
                call = data.split(b"Call-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
                with self.lock:
                    self.counts[status] = self.counts.get(status, 0) + 1
                    if status == 200:
                        self.ok_by_call[call] = time.monotonic()
                if status == 401 and call.startswith("r"):
                    msg = sip.parse(data)
                    ch = parse_challenge(msg.get("www-authenticate") or "")
                    dev = msg.from_user()
                    uri = f"sip:{DOMAIN}@127.0.0.1"
                    resp = md5_hex(
                        f"{ha1(dev, DOMAIN, PASSWORD)}:{ch['nonce']}:{md5_hex('REGISTER:' + uri)}"
                    )
                    auth = (
                        f'Authorization: Digest username="{dev}", realm="{DOMAIN}", '
                        f'nonce="{ch["nonce"]}", uri="{uri}", response="{resp}", algorithm=MD5\r\n'
                    )
                    self.sock.sendto(
                        head("REGISTER", dev, call, 2, dev, f"Expires: 3600\r\n{auth}", b""),
                        self.target,
                    )
                elif status == 200 and call.startswith("r"):
                    with self.lock:
                        self.registered.add(call)
            else:  # the gateway's queries after a registration: answer 200 like a device
                try:
                    msg = sip.parse(data)
                except sip.SipError:
                    continue
                self.queries += 1
                self.sock.sendto(sip.response(msg, 200, "OK"), self.target)

    def wait_ready(self, dev: str, timeout: float = 120.0) -> None:
        """OPTIONS until the gateway answers (it loads the device list first)."""
        deadline = time.monotonic() + timeout
        n = 0
        while not self.counts and time.monotonic() < deadline:
            n += 1
            self.sock.sendto(head("OPTIONS", dev, f"o{n}", 1, DOMAIN, "", b""), self.target)
            time.sleep(0.5)
        if not self.counts:
            raise SystemExit("the gateway did not answer OPTIONS")
        with self.lock:
            self.counts.clear()
            self.ok_by_call.clear()

    def paced(self, messages: list[bytes], rate: float) -> float:
        """Send at `rate` per second; the seconds it took."""
        start = time.monotonic()
        per_tick = max(1, int(rate * TICKS))
        for i in range(0, len(messages), per_tick):
            for m in messages[i : i + per_tick]:
                self.sock.sendto(m, self.target)
            due = start + (i + per_tick) / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        return time.monotonic() - start

    def ok(self) -> int:
        with self.lock:
            return self.counts.get(200, 0)


def seed_registrations(ids: list[str], gateway: str) -> None:
    """The devices registered with `gateway` an hour ago, as a restarted gateway finds them."""
    with psycopg.connect(pg_url()) as conn:
        conn.execute("TRUNCATE gb_devices")
        with conn.cursor().copy(
            "COPY gb_devices (device_id, transport, address, registered_at, registered_until, "
            "edition, gateway) FROM STDIN"
        ) as copy:
            for i in ids:
                copy.write_row((i, "udp", "127.0.0.1:5999", "now", "now", 2016, gateway))
        conn.execute("UPDATE gb_devices SET registered_until = now() + interval '2 hours'")
        conn.commit()


def _generate(target, msgs, window, rate, want_200, out) -> None:
    """(A process of its own.) Send `msgs` to `target` from one socket, `window` in flight or
    paced at `rate`/s; count the answers (200s, or any datagram for an echo)."""
    import select

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    n = len(msgs)
    sent = got = ok = lost = 0
    cpu0 = time.process_time()
    t0 = last = last_rx = time.monotonic()
    while got + lost < n:
        now = time.monotonic()
        allowed = min(n, int((now - t0) * rate) + 1) if rate else min(n, got + lost + window)
        while sent < allowed:
            try:
                sock.sendto(msgs[sent], target)
            except BlockingIOError:
                break
            sent += 1
        if poller.poll(1 if sent < n else 100):
            while True:
                try:
                    data = sock.recv(65_536)
                except BlockingIOError:
                    break
                got += 1
                if not want_200 or data[8:11] == b"200":
                    ok += 1
            last = last_rx = time.monotonic()
        elif time.monotonic() - last > (3.0 if sent >= n else 0.5) and sent > got + lost:
            lost = sent - got  # no answer for a while: the outstanding ones are gone
            last = time.monotonic()
            if sent >= n:
                break
    out.put(
        {"sent": sent, "answered": ok, "received": got, "seconds": last_rx - t0,
         "generator_cpu_s": time.process_time() - cpu0}
    )  # fmt: skip


def drive(port: int, msgs: list[bytes], pids: list[int], window: int = 0, rate: float = 0,
          want_200: bool = True) -> dict:  # fmt: skip
    """Run the generator against 127.0.0.1:port; rates and the servers' CPU per 1,000."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    cpu0 = [cpu_seconds(p) for p in pids]
    proc = ctx.Process(
        target=_generate, args=(("127.0.0.1", port), msgs, window, rate, want_200, q)
    )
    proc.start()
    res = q.get(timeout=600)
    proc.join(10)
    cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
    answered = res["answered"]
    return {
        "mode": f"window {window}" if window else f"offered {rate:.0f}/s",
        "sent": res["sent"],
        "answered": answered,
        "per_s": round(answered / res["seconds"]) if res["seconds"] else None,
        "server_cpu_s": [round(c, 2) for c in cpu],
        "server_cpu_s_per_1000": round(cpu[0] * 1000 / answered, 4) if answered else None,
        "generator_cpu_s": round(res["generator_cpu_s"], 2),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def echo_server(port: int, kind: str) -> None:
    """A bare UDP echo (the same datagrams back): the baseline of the socket figures. `burst`:
    the gateway's own UDP reader (gb28181.gateway.UdpEndpoint); `asyncio`: a DatagramProtocol."""
    import asyncio

    async def run() -> None:
        loop = asyncio.get_running_loop()
        if kind == "burst":
            from gb28181.gateway import UdpEndpoint

            box: list = []
            box.append(UdpEndpoint.bind("127.0.0.1", port, loop, lambda d, a: box[0].sendto(d, a)))
        else:

            class Echo(asyncio.DatagramProtocol):
                def connection_made(self, transport) -> None:
                    self.t = transport

                def datagram_received(self, data, addr) -> None:
                    self.t.sendto(data, addr)

            await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", port))
        await asyncio.Event().wait()

    asyncio.run(run())


def start_echo(port: int, kind: str) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-m", "bench.gb28181_bench", "--echo-server", str(port), "--echo-kind",
         kind], cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(b"ping", ("127.0.0.1", port))
            try:
                s.recv(16)
                return p
            except TimeoutError:
                continue
    p.kill()
    raise SystemExit(f"the {kind} echo server did not answer")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def socket_phase(args, ids: list[str], gw_pid: int, port: int, label: str) -> list[dict]:
    """Keepalives over real sockets to the gateway at `port` and to the echo baselines."""
    sn0 = random.randrange(1, 1_000_000)
    msgs = [keepalive(ids[i % len(ids)], sn0 + i) for i in range(args.count)]
    mosq = broker_pid()
    out = []
    for kind in ("burst", "asyncio"):
        eport = free_udp_port()
        echo = start_echo(eport, kind)
        try:
            res = drive(eport, msgs, [echo.pid], window=args.window, want_200=False)
        finally:
            echo.terminate()
            echo.wait(10)
        res["server"] = f"baseline: bare UDP echo ({kind})"
        print(json.dumps(res), flush=True)
        out.append(res)
    pids = [gw_pid] + ([mosq] if mosq else [])
    res = drive(port, msgs, pids, window=args.window)
    res["server"] = f"gateway ({label}), {len(ids)} registered"
    print(json.dumps(res), flush=True)
    out.append(res)
    for rate in [float(r) for r in args.rates.split(",") if r]:
        paced = msgs[: int(rate * args.seconds)]
        res = drive(port, paced, pids, rate=rate)
        res["server"] = f"gateway ({label})"
        print(json.dumps(res), flush=True)
        out.append(res)
    return out


def start_gateway(e: dict, python: str, root: Path, profile: str = "") -> subprocess.Popen:
    prof = ["-m", "cProfile", "-o", profile] if profile else []  # its main thread, at SIGTERM
    gw = subprocess.Popen([python, *prof, "-m", "gridwatch", "gb28181"], env=e, cwd=root)
    port = int(e["GRIDWATCH_SIP_PORT"])
    deadline = time.monotonic() + 180
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # up once it answers OPTIONS
        s.settimeout(0.5)
        while time.monotonic() < deadline and gw.poll() is None:
            s.sendto(head("OPTIONS", "36012100001320000001", "o1", 1, DOMAIN, "", b""),
                     ("127.0.0.1", port))  # fmt: skip
            try:
                s.recv(4096)
                return gw
            except TimeoutError:
                continue
    gw.kill()
    raise SystemExit("the gateway did not answer OPTIONS")


def register_all(peer: Peer, ids: list[str], rate: float, gw_pid: int) -> dict:
    cpu0 = cpu_seconds(gw_pid)
    start = time.monotonic()
    pending = list(ids)
    for _ in range(3):  # resend what the first pass lost
        msgs = [head("REGISTER", d, f"r-{d}", 1, d, "Expires: 3600\r\n", b"") for d in pending]
        peer.paced(msgs, rate)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(peer.registered) < len(ids):
            time.sleep(0.05)
            if os.environ.get("GB_BENCH_DEBUG"):
                print(
                    f"  {time.monotonic() - start:.1f}s registered {len(peer.registered)} {peer.counts}"
                )
        with peer.lock:
            done = {c[2:] for c in peer.registered}
        pending = [d for d in ids if d not in done]
        if not pending:
            break
    last = max(peer.ok_by_call[f"r-{d}"] for d in ids if f"r-{d}" in peer.ok_by_call)
    took = last - start
    cpu = cpu_seconds(gw_pid) - cpu0
    n = len(ids) - len(pending)
    return {
        "registered": n,
        "offered_per_s": rate,
        "seconds": round(took, 2),
        "per_s": round(n / took),
        "gateway_cpu_s": round(cpu, 2),
        "per_gateway_cpu_s": round(n / cpu) if cpu else None,
    }


def broker_pid() -> int | None:
    """The bench's own Mosquitto (its config lives under GRIDWATCH_HOME)."""
    conf = Path(os.environ["GRIDWATCH_HOME"]) / "mqtt" / "mosquitto.conf"
    out = subprocess.run(["pgrep", "-f", f"mosquitto -c {conf}"], capture_output=True, text=True)
    pids = out.stdout.split()
    return int(pids[0]) if pids else None


class Committed:
    """LISTEN gw_events: when each device's alarm.new became visible (committed)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()
        self.thread.start()

    def _run(self) -> None:
        with psycopg.connect(pg_url(), autocommit=True) as conn:
            conn.execute("LISTEN gw_events")
            self.ready.set()
            while not self.stop:
                got = [
                    (int(n.payload), time.monotonic())
                    for n in conn.notifies(timeout=0.2, stop_after=200)
                ]
                if not got:
                    continue
                rows = conn.execute(
                    "SELECT id, kind, payload->>'device_id' FROM hub_events WHERE id = ANY(%s)",
                    ([i for i, _ in got],),
                ).fetchall()
                when = dict(got)
                for event_id, kind, device_id in rows:
                    if kind == "alarm.new":
                        self.at.setdefault(device_id, when[event_id])


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def alarm_latency(peer: Peer, ids: list[str], rate: float, seconds: float, direct: bool) -> dict:
    """Alarms from distinct devices at `rate`; ms from send to committed (p50/p99)."""
    n = int(rate * seconds)
    devs = ids[:n]
    watcher = Committed()
    watcher.ready.wait(10)
    sent: dict[str, float] = {}
    if direct:
        from gridwatch.settings import get_settings
        from tests.ingest.conftest import mqtt_client

        s = get_settings()
        host, port = s.mqtt_endpoint()
        user, pw = s.hub_credentials("simulator")

        class B:
            pass

        b = B()
        b.host, b.port = host, port
        client, _ = mqtt_client(b, user, pw)
    start = time.monotonic()
    for i, dev in enumerate(devs):
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        sent[dev] = time.monotonic()
        if direct:
            payload = {
                "msg_id": f"direct-{i}-{random.randrange(1 << 30)}",
                "ts": time.time(),
                "kind": "zone_intrusion",
                "severity": 1,
            }
            client.publish(f"gw/v1/{dev}/alarm", json.dumps(payload), qos=1)
        else:
            peer.sock.sendto(alarm(dev, 700_000 + i), peer.target)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(watcher.at) < n:
        time.sleep(0.05)
    watcher.stop = True
    if direct:
        client.disconnect()
        client.loop_stop()
    lat = [(watcher.at[d] - sent[d]) * 1000 for d in devs if d in watcher.at]
    return {
        "path": "direct MQTT (baseline)" if direct else "SIP via gateway",
        "alarms": n,
        "committed": len(lat),
        "p50_ms": round(pct(lat, 0.5), 1),
        "p99_ms": round(pct(lat, 0.99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
    }


class _Capture:
    """A UDP transport stand-in: the gateway's answers, kept."""

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def sendto(self, data: bytes, addr) -> None:
        self.out.append(data)


def inprocess(ids: list[str], keepalives_n: int, shards: int = 16, profile: bool = False) -> dict:
    """The gateway's own cost, free of UDP and scheduling on a shared machine: the real Gateway
    (real store and MQTT publisher on the bench services) fed messages directly; CPU seconds
    of this process per message. Baseline beside it: parsing alone (SIP + MANSCDP)."""
    import asyncio

    from gb28181 import manscdp, sip
    from gb28181.cli import build
    from gb28181.digest import ha1, md5_hex, parse_challenge
    from gridwatch.settings import Settings

    settings = Settings(sip_password=PASSWORD, sip_domain=DOMAIN)

    async def run() -> dict:
        gw = build(settings, query_after_register=False, broker_shards=shards)
        gw.known = await asyncio.to_thread(gw.store.load_all)
        await asyncio.to_thread(gw.pub.start, asyncio.get_running_loop())
        gw._tasks = [asyncio.create_task(gw._registration_writer())]
        gw.udp = _Capture()
        addr = ("127.0.0.1", 5999)
        c0 = time.process_time()
        for d in ids:
            gw.on_data(
                head("REGISTER", d, f"r-{d}", 1, d, "Expires: 3600\r\n", b""), "udp", addr, None
            )
        await asyncio.sleep(0)
        challenges = [sip.parse(m) for m in gw.udp.out if m.startswith(b"SIP/2.0 401")]
        gw.udp.out.clear()
        uri = f"sip:{DOMAIN}@127.0.0.1"
        auth_msgs = []
        for msg in challenges:  # the devices' side, not counted
            ch = parse_challenge(msg.get("www-authenticate") or "")
            dev = msg.from_user()
            resp = md5_hex(
                f"{ha1(dev, DOMAIN, PASSWORD)}:{ch['nonce']}:{md5_hex('REGISTER:' + uri)}"
            )
            auth = (
                f'Authorization: Digest username="{dev}", realm="{DOMAIN}", nonce="{ch["nonce"]}", '
                f'uri="{uri}", response="{resp}", algorithm=MD5\r\n'
            )
            auth_msgs.append(
                head("REGISTER", dev, msg.call_id, 2, dev, f"Expires: 3600\r\n{auth}", b"")
            )
        c1 = time.process_time()
        for m in auth_msgs:
            gw.on_data(m, "udp", addr, None)
        while len(gw.regs) < len(ids):
            await asyncio.sleep(0.01)
        c2 = time.process_time()
        reg_cpu = (c1 - c0) + (c2 - c1) - 0  # both legs of every registration
        sn0 = random.randrange(1, 1_000_000)
        msgs = [keepalive(ids[i % len(ids)], sn0 + i) for i in range(keepalives_n)]
        gw.udp.out.clear()
        mosq = broker_pid()
        b3 = cpu_seconds(mosq) if mosq else 0.0
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        c3 = time.process_time()
        for m in msgs:
            gw.on_data(m, "udp", addr, None)
        c4 = time.process_time()
        if prof is not None:
            import pstats

            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        await asyncio.sleep(3)  # the broker works through what was written
        broker_us = (cpu_seconds(mosq) - b3) * 1e6 / keepalives_n if mosq else None
        ok = sum(1 for m in gw.udp.out if m.startswith(b"SIP/2.0 200"))
        c5 = time.process_time()
        for m in msgs:  # baseline: parsing alone
            parsed = sip.parse(m)
            manscdp.parse(parsed.body, parsed.charset())
        c6 = time.process_time()
        for t in gw._tasks:
            t.cancel()
        await asyncio.to_thread(gw.pub.stop)
        return {
            "broker_shards": shards,
            "broker_us_per_heartbeat": round(broker_us, 1) if broker_us is not None else None,
            "registrations": len(gw.regs),
            "registrations_per_cpu_s": round(len(ids) / reg_cpu),
            "keepalives": keepalives_n,
            "keepalives_answered_200": ok,
            "keepalives_per_cpu_s": round(keepalives_n / (c4 - c3)),
            "baseline_parse_only_per_cpu_s": round(keepalives_n / (c6 - c5)),
        }

    return asyncio.run(run())


def reset_alarms() -> None:
    with psycopg.connect(pg_url()) as conn:
        conn.execute("TRUNCATE alarms, alarm_messages CASCADE")
        conn.commit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument(
        "--register-rate", type=float, default=0,
        help="register the devices over SIP at this rate (0: as a restart finds them)",
    )  # fmt: skip
    ap.add_argument("--count", type=int, default=50_000, help="keepalives per closed-loop run")
    ap.add_argument("--window", type=int, default=256, help="keepalives in flight (closed loop)")
    ap.add_argument("--rates", default="5000", help="offered keepalives/s (open loop)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each open-loop run")
    ap.add_argument("--alarm-rate", type=float, default=20.0)
    ap.add_argument("--alarm-seconds", type=float, default=0, help="0: no alarm phase")
    ap.add_argument(
        "--inprocess", type=int, default=0,
        help="keepalives fed to an in-process gateway first (CPU cost per message; 0: skip)",
    )  # fmt: skip
    ap.add_argument("--only-inprocess", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile the in-process keepalives")
    ap.add_argument(
        "--shards", default="16",
        help="broker accounts of the in-process gateway, e.g. 16,1 (1: one role of every device)",
    )  # fmt: skip
    ap.add_argument(
        "--before", default="",
        help="also measure another checkout's gateway first (its root; its .venv/bin/python)",
    )  # fmt: skip
    ap.add_argument(
        "--profile-gateway", default="", help="cProfile the gateway process into this file"
    )
    ap.add_argument("--echo-server", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--echo-kind", default="burst", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.echo_server:
        echo_server(args.echo_server, args.echo_kind)
        return
    os.environ["GRIDWATCH_DB_NAME"] = BENCH_DB
    os.environ.setdefault("GRIDWATCH_HOME", str(ROOT / ".gridwatch" / "bench-gb28181"))
    os.environ.setdefault("GRIDWATCH_PG_PORT", "23408")
    os.environ.setdefault("GRIDWATCH_MQTT_PORT", "23418")
    os.environ.setdefault("GRIDWATCH_SIP_PORT", "23438")
    from gridwatch.services import services_down, services_up
    from gridwatch.settings import get_settings
    from ingest.broker_acl import DynsecAccounts

    services_up(accounts=DynsecAccounts(get_settings()))
    procs: list[subprocess.Popen] = []
    try:
        ids = prepare(args.devices)
        e = env()
        for shards in [int(x) for x in args.shards.split(",")] if args.inprocess else []:
            res = inprocess(ids, args.inprocess, shards, args.profile)
            print(json.dumps(res), flush=True)
            with psycopg.connect(pg_url()) as conn:  # the next phase starts unregistered
                conn.execute("TRUNCATE gb_devices")
                conn.commit()
        if args.only_inprocess:
            return
        out: dict = {"devices": args.devices, "cpus": os.cpu_count(), "keepalive": {}}
        port = int(os.environ["GRIDWATCH_SIP_PORT"])
        name = f"gb28181-{get_settings().sip_id}"
        runs = [("this checkout", sys.executable, ROOT)]
        if args.before:
            before = Path(args.before).resolve()
            python = before / ".venv/bin/python"  # else this venv (an exported tree: git archive)
            runs.insert(
                0, (f"before: {before}", str(python) if python.exists() else sys.executable, before)
            )
        gw = None
        for label, python, root in runs:
            if args.register_rate:
                with psycopg.connect(pg_url()) as conn:
                    conn.execute("TRUNCATE gb_devices")
                    conn.commit()
            else:
                seed_registrations(ids, name)
            gw = start_gateway(e, python, root, args.profile_gateway if root == ROOT else "")
            procs.append(gw)
            if args.register_rate:
                peer = Peer(port)
                peer.wait_ready(ids[0])
                out["registration"] = register_all(peer, ids, args.register_rate, gw.pid)
                print(json.dumps(out["registration"]), flush=True)
                peer.stop = True
                time.sleep(10)  # the after-registration queries settle
            time.sleep(2)
            out["keepalive"][label] = socket_phase(args, ids, gw.pid, port, label)
            if label != runs[-1][0]:
                gw.terminate()
                gw.wait(15)
        if args.alarm_seconds and gw is not None:
            peer = Peer(port)
            ingest = subprocess.Popen([sys.executable, "-m", "ingest"], env=e, cwd=ROOT)
            procs.append(ingest)
            time.sleep(5)
            out["alarm"] = []
            for direct in (True, False):
                reset_alarms()
                res = alarm_latency(peer, ids, args.alarm_rate, args.alarm_seconds, direct)
                out["alarm"].append(res)
                print(json.dumps(res), flush=True)
            peer.stop = True
        print(json.dumps(out, indent=2))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        services_down()


if __name__ == "__main__":
    main()
