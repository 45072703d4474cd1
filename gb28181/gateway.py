"""The GB/T 28181 access gateway: SIP over UDP and TCP, registration with digest auth, keepalives,
catalogs, device info, alarms and mobile positions — all published as contract-v1 MQTT."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gb28181 import live, manscdp, sip
from gb28181.alarmmap import kind_of, msg_id, severity_of
from gb28181.digest import DigestError, FailureLimiter, Nonces, expected_response, ha1
from gb28181.digest import parse_authorization as parse_auth
from gb28181.publisher import GatewayPublisher
from gb28181.store import GatewayStore, Known
from hardware.contract import topics

log = logging.getLogger(__name__)
MIN_EXPIRES, MAX_EXPIRES, DEFAULT_EXPIRES = 60, 86_400, 3_600
CATALOG_WAIT_S = 20.0  # parts of a catalog later than this: store what arrived
SEEN_MAX = 20_000  # answered requests remembered for retransmissions
UDP_RCVBUF = 4 << 20  # capped by net.core.rmem_max


@dataclass
class GatewayConfig:
    """Where the gateway listens and who it is (GRIDWATCH_SIP_* settings)."""

    host: str = "127.0.0.1"
    port: int = 5060
    sip_id: str = "36012100002000000001"
    domain: str = "3601210000"
    password: str | None = None
    # digest nonces' key: `gridwatch gb28181` gives the generated one (secrets.json) so nonces
    # survive a restart; otherwise a random one per gateway, never a published default
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    udp: bool = True
    tcp: bool = True
    query_after_register: bool = True
    group_commit_ms: float = 20.0
    broker_shards: int = 16  # broker accounts of this gateway (see GatewayPublisher)

    @property
    def name(self) -> str:
        """This gateway's name: its broker accounts are gateway-gb28181-<SIP id>[-shard]."""
        return f"gb28181-{self.sip_id}"


@dataclass
class Registration:
    """A live registration: where the device is and until when."""

    device_id: str
    transport: str
    addr: tuple[str, int]
    until: float
    edition: int
    writer: asyncio.StreamWriter | None = None


@dataclass
class Assembly:
    """A catalog arriving in several messages (SumNum items in all)."""

    sum_num: int
    items: dict[str, manscdp.CatalogItem] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _ts(when: datetime | None) -> str:
    return (when or datetime.now(UTC)).isoformat()


class UdpEndpoint:
    """A UDP socket on the event loop that reads datagrams in bursts (up to BURST per wake-up;
    asyncio's datagram transport reads one per turn of the loop, a poll and a callback per
    keepalive) and sends answers at once, queueing only when the kernel's buffer is full.
    `handler(data, (host, port))` is called for every datagram."""

    BURST = 256
    BACKLOG = 20_000  # answers queued while the send buffer is full; more are dropped (UDP)

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, handler) -> None:
        self.sock, self.loop, self.handler = sock, loop, handler
        self.fd = sock.fileno()
        self.backlog: deque[tuple[bytes, tuple[str, int]]] = deque()
        self.errors = 0
        sock.setblocking(False)
        loop.add_reader(self.fd, self._read)

    @classmethod
    def bind(cls, host: str, port: int, loop: asyncio.AbstractEventLoop, handler) -> UdpEndpoint:
        family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:  # ride out scheduling stalls without dropping datagrams
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        except OSError:
            pass
        try:
            sock.bind(addr)
        except OSError:
            sock.close()
            raise
        return cls(sock, loop, handler)

    def _read(self) -> None:
        recv, handler = self.sock.recvfrom, self.handler
        for _ in range(self.BURST):
            try:
                data, addr = recv(65_536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP port unreachable reported on the socket
                log.debug("udp receive error: %s", exc)
                return
            try:
                handler(data, (addr[0], addr[1]))
            except Exception:  # one bad datagram never stops the others
                self.errors += 1
                log.exception("udp datagram from %s:%s not handled", addr[0], addr[1])

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.backlog:
            if len(self.backlog) < self.BACKLOG:
                self.backlog.append((data, addr))
            return
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.backlog.append((data, addr))
            self.loop.add_writer(self.fd, self._write)
        except OSError as exc:
            log.debug("udp send to %s:%s failed: %s", addr[0], addr[1], exc)

    def _write(self) -> None:
        while self.backlog:
            data, addr = self.backlog[0]
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("udp send to %s:%s failed: %s", addr[0], addr[1], exc)
            self.backlog.popleft()
        self.loop.remove_writer(self.fd)

    def get_extra_info(self, name: str, default=None):
        if name == "socket":
            return self.sock
        if name == "sockname":
            return self.sock.getsockname()
        return default

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        self.loop.remove_reader(self.fd)
        if self.backlog:
            self.loop.remove_writer(self.fd)
        self.sock.close()


class Gateway:
    """One gateway process; run with `await start()` then `await serve_forever()`."""

    def __init__(
        self, cfg: GatewayConfig, store: GatewayStore, publisher: GatewayPublisher
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.pub = publisher
        self.nonces = Nonces(cfg.secret)
        self.limiter = FailureLimiter()
        self.known: dict[str, Known] = {}
        self.regs: dict[str, Registration] = {}
        self.children: dict[str, set[str]] = {}
        self.seen: OrderedDict[tuple[str, int, str], bytes | None] = OrderedDict()
        self.catalogs: dict[tuple[str, str], Assembly] = {}
        self.storing: dict[str, asyncio.Future] = {}  # parent id -> its catalog store in flight
        self.client_tx: dict[str, tuple[asyncio.Future, asyncio.TimerHandle | None]] = {}
        self.stats: Counter[str] = Counter()
        self.udp: UdpEndpoint | None = None
        self.tcp_server: asyncio.AbstractServer | None = None
        self._sn = int(time.time()) % 100_000
        self._reg_queue: list[tuple[tuple, asyncio.Future]] = []
        self._reg_wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._local_ip: dict[str, str] = {}
        self.ready = asyncio.Event()
        self._db_slots = asyncio.Semaphore(4)
        self.live = LiveSessions(self)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.known = await asyncio.to_thread(self.store.load_all)
        fronted = set(await asyncio.to_thread(self.store.fronted))
        now = time.time()
        for k in self.known.values():
            if k.parent_id:
                self.children.setdefault(k.parent_id, set()).add(k.device_id)
            if (
                k.device_id in fronted
                and k.registered_until
                and k.registered_until > now
                and k.address
                and k.transport
            ):
                host, _, port = k.address.rpartition(":")
                self.regs[k.device_id] = Registration(
                    k.device_id, k.transport, (host, int(port)), k.registered_until, k.edition
                )
        self.pub.subscriptions = [topics.command_filter()]
        self.pub.on_command = self.on_command
        await asyncio.to_thread(self.pub.start, loop, fronted)
        if self.cfg.udp:
            self.udp = UdpEndpoint.bind(
                self.cfg.host,
                self.cfg.port,
                loop,
                lambda data, addr: self.on_data(data, "udp", addr, None),
            )
        if self.cfg.tcp:
            self.tcp_server = await asyncio.start_server(
                self._tcp_client, self.cfg.host, self.cfg.port, limit=sip.MAX_MESSAGE_BYTES
            )
        self._tasks = [
            asyncio.create_task(self._registration_writer()),
            asyncio.create_task(self._sweeper()),
        ]
        log.info(
            "gb28181 gateway %s (domain %s) on %s:%s udp=%s tcp=%s; %d live registrations",
            self.cfg.sip_id,
            self.cfg.domain,
            self.cfg.host,
            self.cfg.port,
            self.cfg.udp,
            self.cfg.tcp,
            len(self.regs),
        )
        if self.cfg.password is None:
            log.warning(
                "GRIDWATCH_SIP_PASSWORD is not set: only devices with their own SIP password "
                "(gridwatch gb28181 device ID --password) can register"
            )
        self.ready.set()

    async def stop(self) -> None:
        await self.live.close_all()
        for t in self._tasks:
            t.cancel()
        if self._reg_queue:
            await self._flush_registrations()
        if self.udp is not None:
            self.udp.close()
        if self.tcp_server is not None:
            self.tcp_server.close()
        await asyncio.to_thread(self.pub.stop)

    # ------------------------------------------------------------------ transport
    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        addr = (peer[0], peer[1])
        framer = sip.StreamFramer()
        try:
            while True:
                data = await reader.read(16_384)
                if not data:
                    break
                try:
                    messages = framer.feed(data)
                except sip.SipError as exc:
                    self.stats["malformed"] += 1
                    log.info("tcp %s:%s closed: %s", addr[0], addr[1], exc)
                    break
                for raw in messages:
                    self.on_data(raw, "tcp", addr, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def send(self, transport: str, addr: tuple[str, int], writer, data: bytes) -> None:
        if transport == "tcp":
            if writer is not None and not writer.is_closing():
                writer.write(data)
        elif self.udp is not None:
            self.udp.sendto(data, addr)

    # ------------------------------------------------------------------ dispatch
    def on_data(self, data: bytes, transport: str, addr: tuple[str, int], writer) -> None:
        self.stats["messages"] += 1
        try:
            msg = sip.parse(data, stream=transport == "tcp")
        except sip.SipError as exc:
            self.stats["malformed"] += 1
            log.debug("malformed from %s:%s: %s", addr[0], addr[1], exc)
            self._reject_raw(data, exc, transport, addr, writer)
            return
        if not msg.is_request:
            self._on_response(msg)
            return
        key = (msg.call_id, msg.cseq[0], msg.method or "")
        if key in self.seen:  # a retransmission: the same answer again, or wait for it
            self.stats["retransmissions"] += 1
            answer = self.seen[key]
            if answer is not None:
                self.send(transport, addr, writer, answer)
            return
        if msg.method in ("MESSAGE", "NOTIFY"):  # keepalives are answered without a task
            answer = self._message_now(msg, addr)
            if answer is not None:
                self._remember(key, answer)
                self.send(transport, addr, writer, answer)
                return
        self._remember(key, None)
        task = asyncio.ensure_future(self._handle(msg, key, transport, addr, writer))
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.stats["errors"] += 1
            log.error("request handler failed", exc_info=task.exception())

    def _remember(self, key: tuple[str, int, str], answer: bytes | None) -> None:
        self.seen[key] = answer
        self.seen.move_to_end(key)
        while len(self.seen) > SEEN_MAX:
            self.seen.popitem(last=False)

    def _reject_raw(self, data: bytes, exc: sip.SipError, transport, addr, writer) -> None:
        """A request too broken to parse still gets a 4xx when its headers can be echoed."""
        try:
            head = data[: data.find(b"\r\n\r\n")] if b"\r\n\r\n" in data else data[:4096]
            lines = [
                line
                for line in head[:8192].split(b"\r\n")
                if not line.lower().startswith((b"content-length", b"l:"))
            ]
            fake = sip.parse(b"\r\n".join(lines) + b"\r\nContent-Length: 0\r\n\r\n")
        except sip.SipError:
            return
        if fake.is_request:
            reason = str(exc).replace("\r", " ").replace("\n", " ").replace('"', "'")[:100]
            self.send(
                transport,
                addr,
                writer,
                sip.response(
                    fake,
                    exc.status,
                    "Message Too Large" if exc.status == 513 else "Bad Request",
                    [("Warning", f'399 gridwatch "{reason}"')],
                ),
            )

    async def _handle(self, msg: sip.SipMessage, key, transport, addr, writer) -> None:
        method = msg.method
        if method == "REGISTER":
            answer = await self._register(msg, transport, addr, writer)
        elif method in ("MESSAGE", "NOTIFY"):
            answer = await self._message(msg, transport, addr)
        elif method == "OPTIONS":
            answer = sip.response(msg, 200, "OK", [("Allow", "REGISTER, MESSAGE, NOTIFY, OPTIONS")])
        elif method == "ACK":
            return
        else:
            answer = sip.response(msg, 501, "Not Implemented")
        self._remember(key, answer)
        self.send(transport, addr, writer, answer)
        follow = getattr(answer, "follow", None)
        if follow:
            await follow()

    # ------------------------------------------------------------------ REGISTER
    def _challenge(self, msg: sip.SipMessage, stale: bool = False) -> bytes:
        value = f'Digest realm="{self.cfg.domain}", nonce="{self.nonces.issue()}", algorithm=MD5'
        if stale:
            value += ", stale=true"
        return sip.response(msg, 401, "Unauthorized", [("WWW-Authenticate", value)])

    async def _device(self, device_id: str) -> Known | None:
        known = self.known.get(device_id)
        if known is None:
            async with self._db_slots:  # a flood of unknown ids must not exhaust the pool
                known = await asyncio.to_thread(self.store.lookup, device_id)
            if known is not None:
                self.known[device_id] = known
        return known

    def _expires(self, msg: sip.SipMessage) -> int:
        raw = msg.get("expires")
        if raw is None:
            contact = msg.get("contact") or ""
            idx = contact.lower().find("expires=")
            raw = contact[idx + 8 :].split(";")[0].split(",")[0].strip() if idx >= 0 else None
        if raw is None:
            return DEFAULT_EXPIRES
        if not raw.isdigit() or len(raw) > 9:
            raise sip.SipError(f"bad Expires {raw[:16]!r}")
        value = int(raw)
        return 0 if value == 0 else max(MIN_EXPIRES, min(MAX_EXPIRES, value))

    async def _register(self, msg: sip.SipMessage, transport, addr, writer) -> bytes:
        self.stats["register"] += 1
        ip = addr[0]
        if self.limiter.blocked(ip):
            self.stats["register_blocked"] += 1
            return sip.response(
                msg, 403, "Forbidden", [("Warning", '399 gridwatch "too many failures"')]
            )
        try:
            device_id = msg.from_user()
            expires = self._expires(msg)
        except sip.SipError as exc:
            return sip.response(msg, 400, "Bad Request", [("Warning", f'399 gridwatch "{exc}"')])
        if len(device_id) != 20 or not device_id.isdigit():
            return sip.response(
                msg,
                400,
                "Bad Request",
                [("Warning", '399 gridwatch "From user is not a 20-digit id"')],
            )
        auth = msg.get("authorization")
        if auth is None:
            return self._challenge(msg)
        try:
            params = parse_auth(auth)
        except DigestError as exc:
            self.stats["register_bad_auth"] += 1
            return sip.response(msg, 400, "Bad Request", [("Warning", f'399 gridwatch "{exc}"')])
        verdict = self.nonces.check(params["nonce"])
        if verdict == "stale":
            return self._challenge(msg, stale=True)
        if verdict != "ok":
            return self._challenge(msg)
        known = await self._device(device_id)
        secret = known.ha1 if known is not None and known.ha1 else None
        if secret is None and self.cfg.password is not None:
            secret = ha1(params["username"], params["realm"], self.cfg.password)
        ok = (
            secret is not None
            and params["username"] == device_id
            and params["realm"] == self.cfg.domain
        )
        if ok:
            try:
                ok = expected_response(params, "REGISTER", secret) == params["response"].lower()
            except DigestError:
                ok = False
        if not ok:
            self.limiter.failure(ip)
            self.stats["register_wrong_password"] += 1
            log.info(
                "wrong SIP password for %s from %s (%d failures)",
                device_id,
                ip,
                self.limiter.failures(ip),
            )
            return sip.response(msg, 403, "Forbidden")
        edition = self._edition(msg, known)
        if known is None:
            self.stats["register_unknown"] += 1
            await self._pending(device_id, transport, addr)
            return sip.response(
                msg,
                403,
                "Forbidden",
                [("Warning", '399 gridwatch "not registered: pending an installer"')],
            )
        date = [("Date", datetime.now(manscdp.CHINA_TZ).strftime("%Y-%m-%dT%H:%M:%S.000"))]
        if expires == 0:
            await self._unregister(device_id, "unregistered")
            return sip.response(msg, 200, "OK", [*date, ("Expires", "0")])
        was = self.regs.get(device_id)
        until = time.time() + expires
        try:  # its own broker rules first: nothing it sends may be refused
            await self.pub.grant([device_id, *self.children.get(device_id, ())])
        except Exception as exc:
            log.warning("broker did not grant %s to this gateway: %s", device_id, exc)
            return sip.response(msg, 503, "Service Unavailable", [("Retry-After", "5")])
        await self._save_registration(
            (device_id, transport, f"{addr[0]}:{addr[1]}", until, edition)
        )
        self.regs[device_id] = Registration(device_id, transport, addr, until, edition, writer)
        known.edition = edition
        self.stats["registered"] += 1
        self._heartbeat(device_id, "registered")
        contact = msg.get("contact")
        extra = [*date, ("Expires", str(expires))] + ([("Contact", contact)] if contact else [])
        answer = _Answer(sip.response(msg, 200, "OK", extra))
        fresh = was is None or was.addr != addr
        if fresh and self.cfg.query_after_register:
            answer.follow = lambda: self._after_register(device_id)
        return answer

    def _edition(self, msg: sip.SipMessage, known: Known | None) -> int:
        ver = (msg.get("x-gb-ver") or "").strip()
        if ver.startswith("3"):
            return 2022
        if ver.startswith("2"):
            return 2016
        return known.edition if known is not None else 2016

    async def _pending(self, device_id: str, transport: str, addr: tuple[str, int]) -> None:
        """An unknown id that knew the platform password: on the pending-devices list (the one
        ingest fills from unknown MQTT ids) with its address, for an installer. Written to the
        database: this gateway's broker accounts may publish only for devices it fronts."""
        payload = {
            "ts": _now_iso(),
            "status": "sip_register",
            "metrics": {
                "via": "gb28181",
                "transport": transport,
                "address": f"{addr[0]}:{addr[1]}",
            },
        }
        topic = topics.device_topic(device_id, topics.HEARTBEAT)
        async with self._db_slots:
            taken = await asyncio.to_thread(
                self.store.add_pending, device_id, topic, orjson.dumps(payload)
            )
        if not taken:
            self.stats["pending_refused"] += 1
            log.info("%s not put on the pending list: its source is over the cap", device_id)

    async def _save_registration(self, row: tuple) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._reg_queue.append((row, fut))
        self._reg_wake.set()
        await fut

    async def _registration_writer(self) -> None:
        while True:
            await self._reg_wake.wait()
            await asyncio.sleep(self.cfg.group_commit_ms / 1000)
            self._reg_wake.clear()
            await self._flush_registrations()

    async def _flush_registrations(self) -> None:
        batch, self._reg_queue = self._reg_queue, []
        if not batch:
            return
        latest: dict[str, tuple] = {}
        for row, _ in batch:
            latest[row[0]] = row
        try:
            await asyncio.to_thread(self.store.save_registrations, list(latest.values()))
        except Exception as exc:  # the database is down: nothing is acknowledged
            log.warning("registrations not saved (%s); devices will retry", exc)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    async def _unregister(self, device_id: str, reason: str) -> None:
        reg = self.regs.pop(device_id, None)
        if reg is not None:
            await self._save_registration(
                (device_id, reg.transport, f"{reg.addr[0]}:{reg.addr[1]}", None, reg.edition)
            )
        self.stats[reason] += 1
        futures = [
            self.pub.publish(topics.device_topic(device_id, topics.STATE), b"offline", qos=1)
        ]
        for child in self.children.get(device_id, ()):
            futures.append(
                self.pub.publish(topics.device_topic(child, topics.STATE), b"offline", qos=1)
            )
        await asyncio.gather(*(f for f in futures if f is not None))

    async def _sweeper(self) -> None:
        """Registrations that ran out without a refresh: the device is offline. Once a minute
        the device list is read again (new passwords, CRS, retired devices)."""
        reloaded = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - reloaded > 60:
                reloaded = time.monotonic()
                try:
                    fresh = await asyncio.to_thread(self.store.load_all)
                    for k in fresh.values():
                        old = self.known.get(k.device_id)
                        if old is not None:
                            k.edition = old.edition
                    self.known = fresh
                    await self._refront()
                except Exception as exc:
                    log.warning("device list not reloaded: %s", exc)
            now = time.time()
            for device_id in [d for d, r in self.regs.items() if r.until < now]:
                try:
                    await self._unregister(device_id, "expired")
                except Exception as exc:
                    log.warning("expiry of %s not published yet: %s", device_id, exc)
            stale = [
                k for k, a in self.catalogs.items() if time.monotonic() - a.started > CATALOG_WAIT_S
            ]
            for key in stale:
                asm = self.catalogs.pop(key)
                log.info(
                    "catalog of %s: %d of %d items arrived; storing those",
                    key[0],
                    len(asm.items),
                    asm.sum_num,
                )
                await self._store_catalog(key[0], list(asm.items.values()))

    async def _refront(self) -> None:
        """Broker rules for what this gateway fronts now: devices that registered with another
        gateway since (and their channels) or were retired lose theirs."""
        fronted = set(await asyncio.to_thread(self.store.fronted))
        keep = {d for d in fronted if d in self.known}
        for device_id in self.regs:
            keep.add(device_id)
            keep.update(self.children.get(device_id, ()))
        await self.pub.set_devices(keep)

    # ------------------------------------------------------------------ heartbeats
    def _heartbeat(self, device_id: str, status: str = "ok") -> None:
        payload = orjson.dumps({"ts": time.time(), "status": status})
        self.pub.publish_soon(topics.device_topic(device_id, topics.HEARTBEAT), payload)
        for child in self.children.get(device_id, ()):
            k = self.known.get(child)
            if k is not None and k.channel_status != "OFF":
                self.pub.publish_soon(topics.device_topic(child, topics.HEARTBEAT), payload)

    # ------------------------------------------------------------------ MESSAGE / NOTIFY
    def _message_now(self, msg: sip.SipMessage, addr) -> bytes | None:
        """What can be answered at once (refusals, keepalives); None: needs _message. The
        parsed body is kept on the message for _message."""
        try:
            sender = msg.from_user()
        except sip.SipError as exc:
            return sip.response(msg, 400, "Bad Request", [("Warning", f'399 gridwatch "{exc}"')])
        reg = self.regs.get(sender)
        if reg is None or reg.addr[0] != addr[0]:
            self.stats["unregistered_message"] += 1
            return sip.response(
                msg, 403, "Forbidden", [("Warning", '399 gridwatch "register first"')]
            )
        if msg.content_type() not in ("application/manscdp+xml", "application/xml", "text/xml"):
            return sip.response(
                msg, 415, "Unsupported Media Type", [("Accept", "Application/MANSCDP+xml")]
            )
        try:
            body = manscdp.parse(msg.body, msg.charset())
        except manscdp.BodyError as exc:
            self.stats["bad_body"] += 1
            reason = str(exc).replace('"', "'")[:120]
            return sip.response(msg, 400, "Bad Request", [("Warning", f'399 gridwatch "{reason}"')])
        self.stats[f"{body.root}.{body.cmd_type}"] += 1
        if body.cmd_type == "Keepalive":
            self._heartbeat(sender)
            return sip.response(msg, 200, "OK")
        msg.parsed = (sender, reg, body)  # type: ignore[attr-defined]
        return None

    async def _message(self, msg: sip.SipMessage, transport: str, addr) -> bytes:
        sender, reg, body = msg.parsed  # type: ignore[attr-defined]
        cmd = body.cmd_type
        if cmd == "Alarm" and body.root == "Notify":
            try:
                await self._alarm(sender, body, reg)
            except ConnectionError as exc:
                log.warning("alarm of %s not acknowledged by the broker: %s", sender, exc)
                return sip.response(msg, 503, "Service Unavailable", [("Retry-After", "5")])
            answer = _Answer(sip.response(msg, 200, "OK"))
            answer.follow = lambda: self._send_request(
                sender, "MESSAGE", manscdp.answer("Alarm", body.sn, body.device_id), wait=False
            )
            return answer
        if cmd == "MobilePosition":
            try:
                await self._position(sender, body)
            except ConnectionError:
                return sip.response(msg, 503, "Service Unavailable", [("Retry-After", "5")])
            return sip.response(msg, 200, "OK")
        if cmd == "Catalog" and body.root in ("Response", "Notify"):
            answer = _Answer(sip.response(msg, 200, "OK"))
            answer.follow = lambda: self._catalog(sender, body)
            return answer
        if cmd in ("DeviceInfo", "DeviceStatus") and body.root == "Response":
            answer = _Answer(sip.response(msg, 200, "OK"))
            answer.follow = lambda: self._info(sender, body)
            return answer
        return sip.response(msg, 200, "OK")

    async def _source(self, sender: str, device_id: str) -> str:
        """The device an event is about: the body's DeviceID when it is the sender or one of
        its channels (a device never speaks for another's), else the sender."""
        if device_id == sender or device_id in self.children.get(sender, ()):
            return device_id
        storing = self.storing.get(sender)
        if storing is not None:  # its catalog is being stored: the channel may be in it
            await asyncio.wait([storing], timeout=30.0)
            if device_id in self.children.get(sender, ()):
                return device_id
        known = await self._device(device_id)  # a channel stored by another gateway process
        if known is not None and known.parent_id == sender:
            await self.pub.grant([device_id])
            self.children.setdefault(sender, set()).add(device_id)
            return device_id
        return sender

    async def _alarm(self, sender: str, body: manscdp.Body, reg: Registration) -> None:
        source = await self._source(sender, body.device_id)
        known = self.known.get(source) or self.known.get(sender)
        alarm_time = body.text("AlarmTime")
        method = body.text("AlarmMethod")
        alarm_type = body.text("Info/AlarmType") or body.text("AlarmType")
        detail: dict[str, Any] = {
            "gb28181": {
                "edition": reg.edition,
                "sn": body.sn,
                "device_id": body.device_id,
                "priority": body.text("AlarmPriority"),
                "method": method,
                "type": alarm_type,
                "event_type": body.text("Info/AlarmTypeParam/EventType"),
                "description": (body.text("AlarmDescription") or "")[:500] or None,
            }
        }
        payload: dict[str, Any] = {
            "msg_id": msg_id(body.device_id, body.sn, alarm_time),
            "ts": _ts(manscdp.gb_time(alarm_time)),
            "kind": kind_of(method, alarm_type, reg.edition),
            "severity": severity_of(body.text("AlarmPriority")),
            "detail": detail,
        }
        where = manscdp.lon_lat(body)
        if where is not None:
            payload["lon"], payload["lat"] = where
            payload["crs"] = known.crs if known is not None else "wgs84"
        await self._publish(source, topics.ALARM, payload, "alarms")

    async def _publish(self, device_id: str, kind: str, payload: dict[str, Any], stat: str) -> None:
        """One contract message of the device's (QoS 1), counted in stats[stat]; waits for the
        broker's acknowledgement when the publisher hands back a future."""
        fut = self.pub.publish(topics.device_topic(device_id, kind), orjson.dumps(payload), qos=1)
        self.stats[stat] += 1
        if fut is not None:
            await fut

    async def _position(self, sender: str, body: manscdp.Body) -> None:
        source = await self._source(sender, body.device_id)
        where = manscdp.lon_lat(body)
        if where is None:
            return
        known = self.known.get(source) or self.known.get(sender)
        payload: dict[str, Any] = {
            "ts": _ts(manscdp.gb_time(body.text("Time"))),
            "lon": where[0],
            "lat": where[1],
            "crs": known.crs if known is not None else "wgs84",
        }
        speed = manscdp._float(body.text("Speed"))
        heading = manscdp._float(body.text("Direction"))
        if speed is not None and 0 <= speed <= 500:
            payload["speed"] = speed
        if heading is not None and 0 <= heading <= 360:
            payload["heading"] = heading
        await self._publish(source, topics.POSITION, payload, "positions")

    async def _catalog(self, sender: str, body: manscdp.Body) -> None:
        try:
            sum_num, items = manscdp.catalog(body)
        except manscdp.BodyError as exc:
            log.info("catalog of %s refused: %s", sender, exc)
            return
        if body.root == "Notify":  # ADD/DEL/UPDATE/ON/OFF, applied as they come
            await self._store_catalog(sender, items)
            return
        key = (sender, body.sn)
        asm = self.catalogs.get(key)
        if asm is None:
            asm = self.catalogs[key] = Assembly(sum_num)
        for item in items:
            asm.items[item.device_id] = item
        if len(asm.items) >= asm.sum_num:
            del self.catalogs[key]
            await self._store_catalog(sender, list(asm.items.values()))

    async def _store_catalog(self, parent_id: str, items: list[manscdp.CatalogItem]) -> None:
        parent = self.known.get(parent_id)
        if parent is None:
            return
        previous = self.storing.get(parent_id)
        done = asyncio.get_running_loop().create_future()
        self.storing[parent_id] = done
        try:
            if previous is not None:
                await asyncio.wait([previous], timeout=60.0)
            await self._store_catalog_now(parent, items)
        finally:
            done.set_result(None)
            if self.storing.get(parent_id) is done:
                del self.storing[parent_id]

    async def _store_catalog_now(self, parent: Known, items: list[manscdp.CatalogItem]) -> None:
        parent_id = parent.device_id
        try:
            out = await asyncio.to_thread(self.store.save_catalog, parent, items)
        except Exception as exc:
            log.warning("catalog of %s not stored: %s", parent_id, exc)
            self.stats["catalog_errors"] += 1
            return
        self.stats["catalogs"] += 1
        self.stats["channels"] += len(out["channels"])
        if out["rejected"]:
            log.info(
                "catalog of %s: %d channels refused, e.g. %s",
                parent_id,
                len(out["rejected"]),
                out["rejected"][0],
            )
        channels = await asyncio.to_thread(self.store.channels_of, parent_id)
        try:  # the channels' broker rules before anything is published for them
            await self.pub.grant(channels)
        except Exception as exc:
            log.warning("channels of %s not granted on the broker: %s", parent_id, exc)
            self.stats["catalog_errors"] += 1
            return
        self.known.update(channels)
        kids = self.children.setdefault(parent_id, set())
        kids.update(channels)
        for gone in out["deleted_ids"]:
            kids.discard(gone)
            self.known.pop(gone, None)
        payload = orjson.dumps({"ts": time.time(), "status": "catalog"})
        for cid, status in out["channels"]:
            if status == "OFF":
                self.pub.publish(topics.device_topic(cid, topics.STATE), b"offline", qos=1)
            elif parent_id in self.regs:
                self.pub.publish_soon(topics.device_topic(cid, topics.HEARTBEAT), payload)
        log.info(
            "catalog of %s: %d channels stored, %d deleted",
            parent_id,
            len(out["channels"]),
            out["deleted"],
        )

    async def _info(self, sender: str, body: manscdp.Body) -> None:
        if body.cmd_type == "DeviceInfo":
            info = {
                "name": body.text("DeviceName"),
                "manufacturer": body.text("Manufacturer"),
                "model": body.text("Model"),
                "firmware": body.text("Firmware"),
                "channels": body.text("Channel"),
            }
        else:
            info = {
                "online": body.text("Online"),
                "status": body.text("Status"),
                "encode": body.text("Encode"),
                "record": body.text("Record"),
                "device_time": body.text("DeviceTime"),
            }
        info = {k: v[:200] for k, v in info.items() if v}
        target = await self._source(sender, body.device_id)
        try:
            await asyncio.to_thread(self.store.save_info, target, info)
        except Exception as exc:
            log.warning("device info of %s not stored: %s", target, exc)

    # ------------------------------------------------------------------ requests to devices
    def next_sn(self) -> int:
        self._sn = self._sn % 999_999 + 1
        return self._sn

    def _local_host(self, peer_ip: str) -> str:
        if self.cfg.host not in ("0.0.0.0", "::", ""):
            return self.cfg.host
        cached = self._local_ip.get(peer_ip)
        if cached is None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.connect((peer_ip, 9))
                    cached = s.getsockname()[0]
                except OSError:
                    cached = "127.0.0.1"
            self._local_ip[peer_ip] = cached
        return cached

    async def _send_request(
        self,
        device_id: str,
        method: str,
        body: bytes,
        *,
        wait: bool = True,
        extra: list | None = None,
    ) -> int | None:
        """Send MESSAGE/SUBSCRIBE to a registered device; its final status (None: no answer)."""
        reg = self.regs.get(device_id)
        if reg is None:
            return None
        host = self._local_host(reg.addr[0])
        call_id = f"{sip.new_tag()}{sip.new_tag()}@{host}"
        proto = "TCP" if reg.transport == "tcp" else "UDP"
        headers = [
            ("Via", f"SIP/2.0/{proto} {host}:{self.cfg.port};rport;branch={sip.new_branch()}"),
            ("From", f"<sip:{self.cfg.sip_id}@{self.cfg.domain}>;tag={sip.new_tag()}"),
            ("To", f"<sip:{device_id}@{self.cfg.domain}>"),
            ("Call-ID", call_id),
            ("CSeq", f"{self.next_sn()} {method}"),
            ("Max-Forwards", "70"),
            ("User-Agent", "gridwatch"),
            *(extra or []),
            ("Content-Type", "Application/MANSCDP+xml"),
        ]
        data = sip.serialize(
            f"{method} sip:{device_id}@{reg.addr[0]}:{reg.addr[1]} SIP/2.0", headers, body
        )
        fut = self._start_tx(reg, call_id, data)
        try:
            answer = await asyncio.wait_for(fut, 8.0) if wait else None
            return answer.status if answer is not None else None
        except TimeoutError:
            return None
        finally:
            if wait:
                self._forget_tx(call_id)

    async def dialog_request(
        self, reg: Registration, data: bytes, call_id: str, timeout: float = 8.0
    ) -> sip.SipMessage | None:
        """Send a request already built (INVITE, BYE) to a registered device; its final
        response, None without one."""
        fut = self._start_tx(reg, call_id, data)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:
            self._forget_tx(call_id)

    def _start_tx(self, reg: Registration, call_id: str, data: bytes) -> asyncio.Future:
        """Send a request to a registered device and track its answer under `call_id` (over
        UDP retransmitted until answered); the future the answer resolves."""
        fut = asyncio.get_running_loop().create_future()
        self.client_tx[call_id] = (fut, None)
        self.send(reg.transport, reg.addr, reg.writer, data)
        if reg.transport == "udp":
            self._retransmit(call_id, reg, data, 0.5)
        return fut

    def _retransmit(self, call_id: str, reg: Registration, data: bytes, interval: float) -> None:
        if call_id not in self.client_tx or interval > 4.0:
            self._forget_tx(call_id)
            return

        def again() -> None:
            if call_id in self.client_tx:
                self.send(reg.transport, reg.addr, None, data)
                self._retransmit(call_id, reg, data, interval * 2)

        fut, _ = self.client_tx[call_id]
        self.client_tx[call_id] = (fut, asyncio.get_running_loop().call_later(interval, again))

    def _forget_tx(self, call_id: str) -> None:
        entry = self.client_tx.pop(call_id, None)
        if entry is not None and entry[1] is not None:
            entry[1].cancel()

    def _on_response(self, msg: sip.SipMessage) -> None:
        try:
            call_id = msg.call_id
        except sip.SipError:
            return
        entry = self.client_tx.get(call_id)
        if entry is None or msg.status is None or msg.status < 200:
            return
        fut, timer = entry
        if timer is not None:
            timer.cancel()
        self.client_tx[call_id] = (fut, None)
        if not fut.done():
            fut.set_result(msg)
        self._forget_tx(call_id)

    async def query(self, device_id: str, cmd_type: str) -> int | None:
        """Ask a registered device for Catalog, DeviceInfo or DeviceStatus."""
        reg = self.regs.get(device_id)
        enc = "UTF-8" if reg is not None and reg.edition == 2022 else "GB2312"
        return await self._send_request(
            device_id, "MESSAGE", manscdp.query(cmd_type, self.next_sn(), device_id, enc)
        )

    async def _after_register(self, device_id: str) -> None:
        for cmd in ("Catalog", "DeviceInfo", "DeviceStatus"):
            status = await self.query(device_id, cmd)
            if status is None or status >= 300:
                log.info("%s query to %s answered %s", cmd, device_id, status)
        known = self.known.get(device_id)
        if known is not None and device_id[10:13] == "138":  # mobile device: ask for positions
            body = manscdp.xml_body(
                "Query",
                [
                    ("CmdType", "MobilePosition"),
                    ("SN", str(self.next_sn())),
                    ("DeviceID", device_id),
                    ("Interval", "5"),
                ],
            )
            await self._send_request(
                device_id, "SUBSCRIBE", body, extra=[("Event", "presence"), ("Expires", "3600")]
            )

    def on_command(self, topic: str, payload: bytes) -> None:
        """gw/v1/{id}/cmd {"cmd": "catalog" | "device_info" | "device_status"} for a device
        registered here: the query on demand."""
        parts = topic.split("/")
        if len(parts) != 4:
            return
        try:
            body = orjson.loads(payload)
            cmd = body.get("cmd")
        except (orjson.JSONDecodeError, AttributeError):
            return
        if cmd in ("live", "live_stop"):
            task = asyncio.ensure_future(self.live.command(parts[2], cmd, body))
            task.add_done_callback(self._task_done)
            return
        if parts[2] not in self.regs:
            return
        cmd_type = {
            "catalog": "Catalog",
            "device_info": "DeviceInfo",
            "device_status": "DeviceStatus",
        }.get(cmd)
        if cmd_type:
            asyncio.ensure_future(self.query(parts[2], cmd_type))


class _Answer(bytes):
    """A response's bytes, optionally with work to do once it has been sent."""

    follow = None


@dataclass
class LiveSession:
    """One INVITE dialog: a channel streaming RTP/PS to a port of the hub."""

    channel: str
    port: int
    ssrc: str
    reg: Registration
    call_id: str
    from_tag: str
    to: str
    cseq: int
    answer: live.SdpInfo
    expiry: asyncio.TimerHandle | None = None


class LiveSessions:
    """Live view for the console: INVITE a channel towards a port of the hub on a broker
    command ({"cmd": "live", "port", "ssrc", "transport", "seconds"} on gw/v1/{channel}/cmd),
    ACK the answer, BYE on {"cmd": "live_stop"} or when the session's time is up. The media
    always comes to this host: the command names a port, never an address."""

    MAX_SESSIONS = 64

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.sessions: dict[tuple[str, int], LiveSession] = {}

    async def command(self, channel: str, cmd: str, body: dict) -> None:
        port, ssrc = body.get("port"), str(body.get("ssrc") or "")
        if not isinstance(port, int) or not 1024 <= port < 65_536:
            log.info("live command for %s refused: bad port %r", channel, port)
            return
        key = (channel, port)
        if cmd == "live_stop":
            await self.bye(key)
            return
        seconds = body.get("seconds", live.DEFAULT_SECONDS)
        if not isinstance(seconds, int) or not 1 <= seconds <= live.MAX_SECONDS:
            seconds = live.DEFAULT_SECONDS
        transport = "tcp" if body.get("transport") == "tcp" else "udp"
        if len(ssrc) != 10 or not ssrc.isdigit():
            log.info("live command for %s refused: bad ssrc", channel)
            return
        current = self.sessions.get(key)
        if current is not None:  # asked again: the session goes on
            self._expire_in(current, seconds)
            return
        if len(self.sessions) >= self.MAX_SESSIONS:
            log.warning("live view of %s refused: %d sessions open", channel, len(self.sessions))
            return
        session = await self.invite(channel, port, ssrc, transport)
        if session is not None:
            self.sessions[key] = session
            self._expire_in(session, seconds)

    def _expire_in(self, session: LiveSession, seconds: int) -> None:
        if session.expiry is not None:
            session.expiry.cancel()
        key = (session.channel, session.port)
        session.expiry = asyncio.get_running_loop().call_later(
            seconds, lambda: asyncio.ensure_future(self.bye(key))
        )

    def _parent_reg(self, channel: str) -> Registration | None:
        reg = self.gw.regs.get(channel)
        if reg is not None:
            return reg
        known = self.gw.known.get(channel)
        if known is not None and known.parent_id:
            return self.gw.regs.get(known.parent_id)
        return None

    async def invite(
        self, channel: str, port: int, ssrc: str, transport: str
    ) -> LiveSession | None:
        gw = self.gw
        reg = self._parent_reg(channel)
        if reg is None:
            log.info("live view of %s: neither it nor its parent is registered here", channel)
            return None
        host = gw._local_host(reg.addr[0])
        call_id = f"{sip.new_tag()}{sip.new_tag()}@{host}"
        from_tag, cseq = sip.new_tag(), gw.next_sn()
        proto = "TCP" if reg.transport == "tcp" else "UDP"
        cfg = gw.cfg
        headers = [
            ("Via", f"SIP/2.0/{proto} {host}:{cfg.port};rport;branch={sip.new_branch()}"),
            ("From", f"<sip:{cfg.sip_id}@{cfg.domain}>;tag={from_tag}"),
            ("To", f"<sip:{channel}@{cfg.domain}>"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} INVITE"),
            ("Max-Forwards", "70"),
            ("Contact", f"<sip:{cfg.sip_id}@{host}:{cfg.port}>"),
            ("Subject", f"{channel}:{ssrc},{cfg.sip_id}:0"),
            ("User-Agent", "gridwatch"),
            ("Content-Type", "APPLICATION/SDP"),
        ]
        offer = live.sdp_offer(cfg.sip_id, host, port, ssrc, transport)
        uri = f"sip:{channel}@{reg.addr[0]}:{reg.addr[1]}"
        answer = await gw.dialog_request(
            reg, sip.serialize(f"INVITE {uri} SIP/2.0", headers, offer), call_id
        )
        if answer is None or answer.status != 200:
            gw.stats["live_refused"] += 1
            log.info("INVITE of %s answered %s", channel, answer.status if answer else "nothing")
            return None
        try:
            media = live.parse_sdp(answer.body)
        except live.SdpError as exc:
            log.info("INVITE of %s: unusable answer (%s)", channel, exc)
            media = None
        to = answer.get("to") or f"<sip:{channel}@{cfg.domain}>"
        session = LiveSession(
            channel, port, ssrc, reg, call_id, from_tag, to, cseq, media or live.SdpInfo()
        )
        self._send_in_dialog(session, "ACK", cseq)
        if media is None:
            await self._bye(session)
            return None
        gw.stats["live_started"] += 1
        log.info("live view of %s -> %s:%d (%s)", channel, host, port, transport)
        return session

    def _in_dialog(self, session: LiveSession, method: str, cseq: int) -> bytes:
        gw, reg, cfg = self.gw, session.reg, self.gw.cfg
        host = gw._local_host(reg.addr[0])
        proto = "TCP" if reg.transport == "tcp" else "UDP"
        headers = [
            ("Via", f"SIP/2.0/{proto} {host}:{cfg.port};rport;branch={sip.new_branch()}"),
            ("From", f"<sip:{cfg.sip_id}@{cfg.domain}>;tag={session.from_tag}"),
            ("To", session.to),
            ("Call-ID", session.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Max-Forwards", "70"),
            ("User-Agent", "gridwatch"),
        ]
        uri = f"sip:{session.channel}@{reg.addr[0]}:{reg.addr[1]}"
        return sip.serialize(f"{method} {uri} SIP/2.0", headers)

    def _send_in_dialog(self, session: LiveSession, method: str, cseq: int) -> None:
        reg = session.reg
        self.gw.send(reg.transport, reg.addr, reg.writer, self._in_dialog(session, method, cseq))

    async def _bye(self, session: LiveSession) -> None:
        data = self._in_dialog(session, "BYE", session.cseq + 1)
        await self.gw.dialog_request(session.reg, data, session.call_id, timeout=4.0)

    async def bye(self, key: tuple[str, int]) -> None:
        session = self.sessions.pop(key, None)
        if session is None:
            return
        if session.expiry is not None:
            session.expiry.cancel()
        self.gw.stats["live_stopped"] += 1
        await self._bye(session)

    async def close_all(self) -> None:
        for key in list(self.sessions):
            await self.bye(key)
