"""Cascading upward: the hub as a lower platform of an upper GB/T 28181 platform (级联, the
city's or the province's platform above a county hub).

The link registers with the upper platform (REGISTER with MD5 digest, refreshed before it runs
out, Expires: 0 when it stops), sends it keepalives (three missed: registered again), answers
its Catalog query with the devices in the link's scope (several MESSAGEs with SumNum), its
DeviceInfo and DeviceStatus queries, and forwards every new alarm of a device in scope as an
Alarm notification. It reads the hub's database with the read-only auditor role: devices for
the catalog, the event bus (hub_events, alarm.new) for alarms, from a cursor kept in a file so
a restart forwards what arrived meanwhile and nothing twice (the alarm's SN is its id, so a
repeat is idempotent at the upper platform too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import socket
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import text
from sqlalchemy.engine import Engine

from gb28181 import manscdp, sip
from gb28181.alarmmap import METHODS, TYPES
from gb28181.digest import DigestError, authorization, parse_challenge

log = logging.getLogger(__name__)
T1 = 0.5  # SIP timer T1: UDP requests are resent after 0.5, 1, 2 s ... until `timeout`
_UPPER = re.compile(r"^(?:sip:)?([0-9]{20})@([^:;>\s]+)(?::([0-9]{1,5}))?$")
SEEN_MAX = 2_000
VERSION = "0.1.0"


@dataclass
class CascadeConfig:
    """One upward link (GRIDWATCH_CASCADE_* settings, or `gridwatch gb28181 cascade`)."""

    upper_id: str
    upper_host: str
    upper_port: int = 5060
    password: str = ""
    local_id: str = "36012100002000000001"  # the hub's platform id (GRIDWATCH_SIP_ID)
    local_domain: str = "3601210000"
    transport: str = "udp"  # udp | tcp
    local_host: str = "0.0.0.0"
    local_port: int = 5061  # 0: any free port
    expires: int = 3600
    keepalive_s: float = 60.0
    keepalive_misses: int = 3  # missed in a row: registered again
    region: str | None = None  # scope: devices of this region and below; None: every device
    crs: str = "wgs84"  # positions sent in wgs84 or gcj02
    edition: int = 2016  # 2022: X-GB-Ver 3.0 and UTF-8 bodies
    catalog_chunk: int = 10  # items per catalog MESSAGE (UDP: one datagram each)
    timeout: float = 8.0  # a request without a final answer by then has failed
    retry_s: float = 5.0  # first pause after a failed registration (doubles up to 60 s)
    alarm_poll_s: float = 0.5
    cursor_path: Path | None = None

    @property
    def upper_domain(self) -> str:
        """GB/T 28181 ids start with their platform's 10-digit domain."""
        return self.upper_id[:10]

    @property
    def encoding(self) -> str:
        return "UTF-8" if self.edition == 2022 else "GB2312"

    @staticmethod
    def parse_upper(value: str) -> tuple[str, str, int]:
        """'sip:34020000002000000001@10.0.0.5:5060' -> (id, host, port); ValueError otherwise."""
        m = _UPPER.match(value.strip())
        if not m:
            raise ValueError(
                f"upper platform {value!r}: write it as sip:<20-digit id>@<host>[:<port>]"
            )
        return m.group(1), m.group(2), int(m.group(3) or 5060)


# ------------------------------------------------------------------ database side
_CATALOG_SQL = """
SELECT d.id, d.name, d.vendor, d.model, d.region_code, d.status,
       ST_X(coalesce(d.last_position, d.position)) AS lon,
       ST_Y(coalesce(d.last_position, d.position)) AS lat,
       g.parent_id, g.civil_code, g.channel_status, g.firmware, p.parent_id IS NOT NULL AS parental
FROM devices d LEFT JOIN gb_devices g ON g.device_id = d.id
LEFT JOIN (SELECT DISTINCT c.parent_id FROM gb_devices c JOIN devices cd ON cd.id = c.device_id
           WHERE cd.retired_at IS NULL AND c.parent_id IS NOT NULL) p ON p.parent_id = d.id
WHERE d.retired_at IS NULL AND d.id <> :me AND (CAST(:prefix AS text) IS NULL OR d.region_code LIKE :prefix || '%')
"""

_ALARMS_SQL = """
SELECT e.id, a.id, a.device_id, a.kind, a.severity, extract(epoch FROM a.raised_at),
       ST_X(a.position), ST_Y(a.position), a.detail, d.name
FROM hub_events e
JOIN alarms a ON a.id = (e.payload->>'id')::bigint AND a.device_id = e.payload->>'device_id'
JOIN devices d ON d.id = a.device_id
WHERE e.id > :after AND e.id <= :upto AND e.kind = 'alarm.new'
  AND (CAST(:prefix AS text) IS NULL OR d.region_code LIKE :prefix || '%')
ORDER BY e.id LIMIT :n
"""


@dataclass
class CatalogRow:
    """One device of the catalog the upper platform is given."""

    device_id: str
    name: str | None
    vendor: str | None
    model: str | None
    civil_code: str | None
    online: bool
    lon: float | None
    lat: float | None
    parent_id: str | None
    parental: bool
    firmware: str | None = None


@dataclass
class AlarmRow:
    """A new alarm of a device in scope, from the event bus."""

    event_id: int
    alarm_id: int
    device_id: str
    kind: str
    severity: int
    raised_at: float
    lon: float | None
    lat: float | None
    detail: dict[str, Any]
    name: str | None


class CascadeStore:
    """The link's reads (synchronous: run them off the event loop), as the auditor role."""

    def __init__(self, engine: Engine, local_id: str, region: str | None = None) -> None:
        from hardware.region_code import RegionCode

        self.engine = engine
        self.local_id = local_id
        self.prefix = RegionCode.parse(region).prefix if region else None

    def catalog(self, device_id: str | None = None) -> list[CatalogRow]:
        """Devices in scope (device_id: just that one), ordered by id."""
        sql = _CATALOG_SQL + (" AND d.id = :one" if device_id else "") + " ORDER BY d.id"
        params = {"me": self.local_id, "prefix": self.prefix, "one": device_id}
        with self.engine.connect() as conn:
            rows = conn.execute(text(sql), params).all()
        out = []
        for r in rows:
            online = r.status == "online" and r.channel_status != "OFF"
            civil = r.civil_code or (r.region_code[:6] if r.region_code else None)
            out.append(
                CatalogRow(
                    r.id.strip(), r.name, r.vendor, r.model, civil, online, r.lon, r.lat,
                    r.parent_id, bool(r.parental), r.firmware,
                )
            )  # fmt: skip
        return out

    def head(self) -> int:
        """The newest event id: a first start forwards alarms from now on, not the history."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(text("SELECT coalesce(max(id), 0) FROM hub_events")).scalar() or 0
            )

    def alarms_after(self, cursor: int, limit: int = 100) -> tuple[list[AlarmRow], int]:
        """New alarms of devices in scope after event `cursor`, and the cursor to go on from.
        Events become visible in id order (ingest.events.ORDER_LOCK), so everything up to the
        newest id read first is final: the cursor passes other events without reading them."""
        with self.engine.connect() as conn:
            upto = int(
                conn.execute(text("SELECT coalesce(max(id), 0) FROM hub_events")).scalar() or 0
            )
            rows = conn.execute(
                text(_ALARMS_SQL),
                {"after": cursor, "upto": upto, "prefix": self.prefix, "n": limit},
            ).all()
        alarms = [
            AlarmRow(
                int(r[0]), int(r[1]), r[2].strip(), r[3], int(r[4]), float(r[5]), r[6], r[7],
                r[8] if isinstance(r[8], dict) else {}, r[9],
            )
            for r in rows
        ]  # fmt: skip
        nxt = alarms[-1].event_id if len(alarms) >= limit else max(upto, cursor)
        return alarms, nxt


# ------------------------------------------------------------------ bodies sent upward
def _reverse_types() -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for edition in (2022, 2016):  # 2016's codes win where both editions name a kind
        for method, types in TYPES[edition].items():
            for code, kind in types.items():
                out[kind] = (method, code)
    return out


KIND_CODES = _reverse_types()
_GB_KIND = re.compile(r"^gb_([a-z_]+?)(?:_type_([0-9]{1,4}))?$")
_METHOD_CODES = {name: code for code, name in METHODS.items()}


def alarm_codes(kind: str, detail: dict[str, Any] | None = None) -> tuple[int, int | None]:
    """(AlarmMethod, AlarmType) for a hub alarm kind: the standard's tables backwards, the
    codes a GB/T 28181 device sent (kept in detail.gb28181), else 7 (other) without a type."""
    gb = (detail or {}).get("gb28181") or {}
    method, alarm_type = str(gb.get("method") or ""), str(gb.get("type") or "")
    if method.isdigit() and len(method) <= 2:
        return int(method), int(alarm_type) if alarm_type.isdigit() and len(
            alarm_type
        ) < 5 else None
    if kind in KIND_CODES:
        return KIND_CODES[kind]
    m = _GB_KIND.match(kind)
    if m and m.group(1) in _METHOD_CODES:
        return _METHOD_CODES[m.group(1)], int(m.group(2)) if m.group(2) else None
    return 7, None  # 其他报警: the hub's kind is in AlarmDescription


def _china_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, manscdp.CHINA_TZ).strftime("%Y-%m-%dT%H:%M:%S")


def _position(cfg: CascadeConfig, lon: float | None, lat: float | None) -> list[tuple[str, str]]:
    if lon is None or lat is None:
        return []
    if cfg.crs == "gcj02":
        from hardware.crs import wgs84_to_gcj02

        lon, lat = wgs84_to_gcj02(lon, lat)
    return [("Longitude", f"{lon:.6f}"), ("Latitude", f"{lat:.6f}")]


def catalog_item(cfg: CascadeConfig, row: CatalogRow) -> str:
    fields = [
        ("DeviceID", row.device_id),
        ("Name", (row.name or row.device_id)[:100]),
        ("Manufacturer", (row.vendor or "unknown")[:100]),
        ("Model", (row.model or "unknown")[:100]),
        ("Owner", "gridwatch"),
        ("CivilCode", row.civil_code or cfg.local_id[:6]),
        ("Address", (row.name or "")[:100]),
        ("Parental", "1" if row.parental else "0"),
        ("ParentID", row.parent_id or cfg.local_id),
        ("SafetyWay", "0"),
        ("RegisterWay", "1"),
        ("Secrecy", "0"),
        ("Status", "ON" if row.online else "OFF"),
        *_position(cfg, row.lon, row.lat),
    ]
    return "<Item>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields) + "</Item>\r\n"


def catalog_bodies(cfg: CascadeConfig, sn: str, rows: list[CatalogRow]) -> list[bytes]:
    """The Catalog answer in messages of cfg.catalog_chunk items, each with SumNum = all."""
    chunk = max(1, cfg.catalog_chunk)
    parts = [rows[i : i + chunk] for i in range(0, len(rows), chunk)] or [[]]
    out = []
    for part in parts:
        items = "".join(catalog_item(cfg, r) for r in part)
        inner = (
            f"<CmdType>Catalog</CmdType>\r\n<SN>{sn}</SN>\r\n<DeviceID>{cfg.local_id}</DeviceID>\r\n"
            f'<SumNum>{len(rows)}</SumNum>\r\n<DeviceList Num="{len(part)}">\r\n{items}'
            "</DeviceList>\r\n"
        )
        out.append(_wrap(cfg, "Response", inner))
    return out


def _wrap(cfg: CascadeConfig, root: str, inner: str) -> bytes:
    text_ = f'<?xml version="1.0" encoding="{cfg.encoding}"?>\r\n<{root}>\r\n{inner}</{root}>\r\n'
    return text_.encode("gb18030" if cfg.encoding == "GB2312" else "utf-8")


def alarm_body(cfg: CascadeConfig, alarm: AlarmRow) -> bytes:
    method, alarm_type = alarm_codes(alarm.kind, alarm.detail)
    gb = alarm.detail.get("gb28181") or {}
    description = gb.get("description") or f"{alarm.kind} {alarm.name or ''}".strip()
    fields = [
        ("CmdType", "Alarm"),
        ("SN", str(alarm.alarm_id % 10_000_000_000)),
        ("DeviceID", alarm.device_id),
        ("AlarmPriority", str(min(4, max(1, alarm.severity)))),
        ("AlarmMethod", str(method)),
        ("AlarmTime", _china_time(alarm.raised_at)),
        ("AlarmDescription", str(description)[:200]),
        *_position(cfg, alarm.lon, alarm.lat),
    ]
    inner = "".join(f"<{k}>{escape(v)}</{k}>\r\n" for k, v in fields)
    if alarm_type is not None:
        inner += f"<Info>\r\n<AlarmType>{alarm_type}</AlarmType>\r\n</Info>\r\n"
    return _wrap(cfg, "Notify", inner)


# ------------------------------------------------------------------ the link
class _Udp(asyncio.DatagramProtocol):
    def __init__(self, link: Cascade) -> None:
        self.link = link

    def datagram_received(self, data: bytes, addr) -> None:
        self.link.on_data(data, (addr[0], addr[1]))


class Cascade:
    """One link to an upper platform; `await start()`, then `await stop()`."""

    def __init__(self, cfg: CascadeConfig, store: CascadeStore) -> None:
        self.cfg = cfg
        self.store = store
        self.stats: Counter[str] = Counter()
        self.registered = asyncio.Event()
        self._reregister = asyncio.Event()
        self._pending: dict[tuple[str, int], asyncio.Future] = {}
        self._seen: OrderedDict[tuple[str, int, str], bytes | None] = OrderedDict()
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._upper_ip = ""
        self._contact_host = "127.0.0.1"
        self._local_port = 0
        self._reg_call = f"{secrets.token_hex(8)}@gridwatch"
        self._reg_tag = sip.new_tag()
        self._cseq = 0
        self._sn = int(time.time()) % 100_000
        self._challenge: dict[str, str] | None = None
        self._nc = 0
        self.cursor: int | None = None
        self.alarms_sent = 0

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(cfg.upper_host, cfg.upper_port, family=socket.AF_INET)
        self._upper_ip = str(infos[0][4][0])
        self._contact_host = _local_ip_towards(self._upper_ip, cfg.local_host)
        if cfg.transport == "udp":
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(cfg.local_host, cfg.local_port)
            )
            self._local_port = self._udp.get_extra_info("sockname")[1]
        self._tasks = [
            asyncio.create_task(self._registration_loop()),
            asyncio.create_task(self._alarm_loop()),
        ]
        log.info(
            "cascade %s -> upper %s at %s:%s (%s, local port %s), scope %s",
            cfg.local_id,
            cfg.upper_id,
            cfg.upper_host,
            cfg.upper_port,
            cfg.transport,
            self._local_port or cfg.local_port,
            f"region {cfg.region}" if cfg.region else "every device",
        )

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.registered.is_set():
            try:  # unregister: the upper platform shows the link offline at once
                await asyncio.wait_for(self._register(0), self.cfg.timeout)
            except (TimeoutError, ConnectionError, OSError):
                pass
        if self._udp is not None:
            self._udp.close()
        if self._reader is not None:
            self._reader.cancel()
        if self._writer is not None:
            self._writer.close()

    # ------------------------------------------------------------ transport
    async def _connect_tcp(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            return
        cfg = self.cfg
        # from any port (a fixed one would wait out TIME_WAIT after a reconnection); the upper
        # platform's requests come over this connection
        local = (cfg.local_host, 0) if cfg.local_host not in ("0.0.0.0", "::", "") else None
        reader, self._writer = await asyncio.open_connection(
            cfg.upper_host, cfg.upper_port, local_addr=local
        )
        self._local_port = self._writer.get_extra_info("sockname")[1]
        self._reader = asyncio.create_task(self._read_tcp(reader, self._writer))

    async def _read_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = sip.StreamFramer()
        peer = writer.get_extra_info("peername") or (self._upper_ip, self.cfg.upper_port)
        try:
            while True:
                data = await reader.read(65_536)
                if not data:
                    break
                for raw in framer.feed(data):
                    self.on_data(raw, (peer[0], peer[1]), stream=True)
        except (ConnectionError, sip.SipError) as exc:
            log.info("connection to the upper platform closed: %s", exc)
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
                self.registered.clear()
                self._reregister.set()

    def _send(self, data: bytes) -> None:
        if self.cfg.transport == "udp":
            if self._udp is not None:
                self._udp.sendto(data, (self._upper_ip, self.cfg.upper_port))
        elif self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    # ------------------------------------------------------------ requests to the upper
    def next_sn(self) -> str:
        self._sn = self._sn % 999_999 + 1
        return str(self._sn)

    def _headers(self, method: str, call_id: str, cseq: int, to: str, tag: str) -> list:
        cfg = self.cfg
        proto = "TCP" if cfg.transport == "tcp" else "UDP"
        via = f"SIP/2.0/{proto} {self._contact_host}:{self._local_port};rport;branch={sip.new_branch()}"
        headers = [
            ("Via", via),
            ("From", f"<sip:{cfg.local_id}@{cfg.local_domain}>;tag={tag}"),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Max-Forwards", "70"),
            ("User-Agent", f"gridwatch/{VERSION}"),
        ]
        if cfg.edition == 2022:
            headers.append(("X-GB-Ver", "3.0"))
        return headers

    async def _connected(self) -> bool:
        """Over TCP, a connection to the upper platform (made when there is none)."""
        if self.cfg.transport != "tcp":
            return True
        try:
            await self._connect_tcp()
        except OSError as exc:
            log.info("upper platform unreachable over TCP: %s", exc)
            return False
        return True

    async def _transaction(self, call_id: str, cseq: int, data: bytes) -> sip.SipMessage | None:
        """Send a request; its final response (None: none within the timeout)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        key = (call_id, cseq)
        self._pending[key] = fut
        deadline = loop.time() + self.cfg.timeout
        interval = T1
        try:
            self._send(data)
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    return None
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), min(interval, left))
                except TimeoutError:
                    if self.cfg.transport == "udp":
                        self._send(data)
                        interval = min(interval * 2, 4.0)
        finally:
            self._pending.pop(key, None)

    async def _register(self, expires: int) -> int | None:
        """REGISTER (answering a digest challenge once); the final status."""
        cfg = self.cfg
        uri = f"sip:{cfg.upper_id}@{cfg.upper_domain}"
        to = f"<sip:{cfg.local_id}@{cfg.local_domain}>"
        extra = [
            ("Contact", f"<sip:{cfg.local_id}@{self._contact_host}:{self._local_port}>"),
            ("Expires", str(expires)),
        ]
        if not await self._connected():
            return None
        auth: list[tuple[str, str]] = []
        if self._challenge is not None:  # the last nonce first: most platforms take it again
            auth = [("Authorization", self._authorize("REGISTER", uri))]
        answered_fresh = False  # an Authorization for a challenge of this very REGISTER sent
        for _ in range(3):
            self._cseq += 1
            headers = self._headers("REGISTER", self._reg_call, self._cseq, to, self._reg_tag)
            data = sip.serialize(f"REGISTER {uri} SIP/2.0", [*headers, *extra, *auth])
            answer = await self._transaction(self._reg_call, self._cseq, data)
            if answer is None or answer.status not in (401, 407):
                return answer.status if answer is not None else None
            value = answer.get("www-authenticate") or answer.get("proxy-authenticate") or ""
            try:
                fresh = parse_challenge(value)
            except DigestError as exc:
                log.warning("upper platform's challenge not understood: %s", exc)
                return answer.status
            if answered_fresh and fresh.get("stale", "").lower() != "true":
                return answer.status  # the answer to its own nonce refused: wrong password
            self._challenge, self._nc = fresh, 0
            auth = [("Authorization", self._authorize("REGISTER", uri))]
            answered_fresh = True
        return 401

    def _authorize(self, method: str, uri: str) -> str:
        assert self._challenge is not None
        self._nc += 1
        return authorization(
            self._challenge, method, uri, self.cfg.local_id, self.cfg.password, self._nc
        )

    async def message(self, body: bytes) -> int | None:
        """A MESSAGE with a MANSCDP body to the upper platform; its final status."""
        cfg = self.cfg
        if not await self._connected():
            return None
        call_id = f"{secrets.token_hex(8)}@{self._contact_host}"
        self._cseq += 1
        cseq = self._cseq
        headers = self._headers(
            "MESSAGE", call_id, cseq, f"<sip:{cfg.upper_id}@{cfg.upper_domain}>", sip.new_tag()
        )
        headers.append(("Content-Type", "Application/MANSCDP+xml"))
        uri = f"sip:{cfg.upper_id}@{cfg.upper_domain}"
        answer = await self._transaction(
            call_id, cseq, sip.serialize(f"MESSAGE {uri} SIP/2.0", headers, body)
        )
        return answer.status if answer is not None else None

    async def keepalive(self) -> int | None:
        inner = (
            f"<CmdType>Keepalive</CmdType>\r\n<SN>{self.next_sn()}</SN>\r\n"
            f"<DeviceID>{self.cfg.local_id}</DeviceID>\r\n<Status>OK</Status>\r\n"
        )
        return await self.message(_wrap(self.cfg, "Notify", inner))

    # ------------------------------------------------------------ loops
    async def _registration_loop(self) -> None:
        cfg = self.cfg
        pause = cfg.retry_s
        while True:
            self._reregister.clear()
            try:
                status = await self._register(cfg.expires)
            except OSError as exc:
                status = None
                log.info("REGISTER to the upper platform not sent: %s", exc)
            if status != 200:
                self.registered.clear()
                self.stats["register_failed"] += 1
                log.warning(
                    "upper platform %s answered REGISTER with %s; again in %.0f s",
                    cfg.upper_id,
                    status if status is not None else "nothing",
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 60.0)
                continue
            pause = cfg.retry_s
            if not self.registered.is_set():
                log.info("registered with upper platform %s", cfg.upper_id)
            self.stats["registered"] += 1
            self.registered.set()
            refresh_at = time.monotonic() + max(cfg.expires * 0.8, cfg.expires - 60)
            misses = 0
            while time.monotonic() < refresh_at and not self._reregister.is_set():
                try:
                    await asyncio.wait_for(
                        self._reregister.wait(),
                        min(cfg.keepalive_s, max(0.0, refresh_at - time.monotonic())),
                    )
                    break
                except TimeoutError:
                    pass
                if time.monotonic() >= refresh_at:
                    break
                status = await self.keepalive()
                if status == 200:
                    misses = 0
                    self.stats["keepalives"] += 1
                    continue
                misses += 1
                self.stats["keepalive_failed"] += 1
                log.info("keepalive to the upper platform answered %s (%d missed)", status, misses)
                if status in (401, 403, 404) or misses >= cfg.keepalive_misses:
                    self.registered.clear()
                    break

    async def _alarm_loop(self) -> None:
        cfg = self.cfg
        while True:
            try:
                if self.cursor is None:  # at once, registered or not: alarms from now on
                    self.cursor = await asyncio.to_thread(self._load_cursor)
                    log.info("alarms forwarded after event %s", self.cursor)
                await self.registered.wait()
                alarms, nxt = await asyncio.to_thread(self.store.alarms_after, self.cursor)
            except Exception as exc:  # the database is away: the cursor waits
                log.warning("alarms not read from the event bus: %s", exc)
                await asyncio.sleep(5.0)
                continue
            delivered = True
            for alarm in alarms:
                status = await self.message(alarm_body(cfg, alarm))
                if status == 200:
                    self.alarms_sent += 1
                    self.stats["alarms_forwarded"] += 1
                elif status is None or status >= 500 or status in (401, 403, 408):
                    # the upper platform is away or lost our registration: the same alarm again
                    # once registered (its SN keeps a repeat idempotent)
                    log.info("alarm %s to the upper platform: %s; kept", alarm.alarm_id, status)
                    if status in (401, 403):
                        self.registered.clear()
                        self._reregister.set()
                    delivered = False
                    break
                else:  # refused for itself (4xx): logged, not retried for ever
                    self.stats["alarms_refused"] += 1
                    log.warning(
                        "upper platform refused alarm %s of %s with %s",
                        alarm.alarm_id,
                        alarm.device_id,
                        status,
                    )
                await asyncio.to_thread(self._save_cursor, alarm.event_id)
            if delivered:
                if nxt != self.cursor:
                    await asyncio.to_thread(self._save_cursor, nxt)
                if len(alarms) == 0:
                    await asyncio.sleep(cfg.alarm_poll_s)
            else:
                await asyncio.sleep(1.0)

    def _load_cursor(self) -> int:
        path = self.cfg.cursor_path
        if path is not None and path.exists():
            try:
                return int(json.loads(path.read_text())["event_id"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("cursor %s unreadable (%s): forwarding from now", path, exc)
        head = self.store.head()
        self._save_cursor(head)
        return head

    def _save_cursor(self, event_id: int) -> None:
        self.cursor = event_id
        path = self.cfg.cursor_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"event_id": event_id, "upper": self.cfg.upper_id}))
        os.replace(tmp, path)

    # ------------------------------------------------------------ requests from the upper
    def on_data(self, data: bytes, addr: tuple[str, int], stream: bool = False) -> None:
        try:
            msg = sip.parse(data, stream=stream)
        except sip.SipError as exc:
            self.stats["malformed"] += 1
            log.debug("malformed message from %s: %s", addr[0], exc)
            return
        if not msg.is_request:
            try:
                txn = (msg.call_id, msg.cseq[0])
            except sip.SipError:
                return
            fut = self._pending.get(txn)
            if fut is not None and not fut.done() and (msg.status or 0) >= 200:
                fut.set_result(msg)
            return
        if addr[0] != self._upper_ip:  # only the upper platform speaks to the link
            self.stats["refused_stranger"] += 1
            self._send_to(addr, sip.response(msg, 403, "Forbidden"))
            return
        key = (msg.call_id, msg.cseq[0], msg.method or "")
        if key in self._seen:  # a retransmission: the same answer again
            answer = self._seen[key]
            if answer is not None:
                self._send_to(addr, answer)
            return
        answer, follow = self._answer(msg)
        self._seen[key] = answer
        while len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        if answer is not None:
            self._send_to(addr, answer)
        if follow is not None:
            task = asyncio.ensure_future(follow)
            self._tasks.append(task)
            task.add_done_callback(self._done)

    def _send_to(self, addr: tuple[str, int], data: bytes) -> None:
        if self.cfg.transport == "udp" and self._udp is not None:
            self._udp.sendto(data, addr)
        else:
            self._send(data)

    def _done(self, task: asyncio.Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("answer to the upper platform failed", exc_info=task.exception())

    def _answer(self, msg: sip.SipMessage) -> tuple[bytes | None, Any]:
        method = msg.method
        if method == "ACK":
            return None, None
        if method == "OPTIONS":
            return sip.response(msg, 200, "OK", [("Allow", "MESSAGE, OPTIONS")]), None
        if method != "MESSAGE":
            return sip.response(msg, 501, "Not Implemented"), None
        try:
            body = manscdp.parse(msg.body, msg.charset())
        except manscdp.BodyError as exc:
            reason = str(exc).replace('"', "'")[:120]
            return sip.response(
                msg, 400, "Bad Request", [("Warning", f'399 gridwatch "{reason}"')]
            ), None
        self.stats[f"{body.root}.{body.cmd_type}"] += 1
        ok = sip.response(msg, 200, "OK")
        if body.root != "Query":  # e.g. the Response to our Alarm notification
            return ok, None
        if body.cmd_type == "Catalog":
            return ok, self._answer_catalog(body)
        if body.cmd_type in ("DeviceInfo", "DeviceStatus"):
            return ok, self._answer_info(body)
        return ok, None

    async def _answer_catalog(self, query: manscdp.Body) -> None:
        one = None if query.device_id == self.cfg.local_id else query.device_id
        rows = await asyncio.to_thread(self.store.catalog, one)
        bodies = catalog_bodies(self.cfg, query.sn, rows)
        for i, body in enumerate(bodies):
            status = await self.message(body)
            if status != 200:
                log.warning(
                    "catalog part %d/%d to the upper platform answered %s; stopped",
                    i + 1,
                    len(bodies),
                    status,
                )
                return
        self.stats["catalogs_sent"] += 1
        log.info(
            "catalog of %d devices sent in %d messages (SN %s)", len(rows), len(bodies), query.sn
        )

    async def _answer_info(self, query: manscdp.Body) -> None:
        cfg = self.cfg
        me = query.device_id == cfg.local_id
        row = None
        if not me:
            rows = await asyncio.to_thread(self.store.catalog, query.device_id)
            row = rows[0] if rows else None
        fields: list[tuple[str, str]]
        if query.cmd_type == "DeviceInfo":
            if me:
                count = len(await asyncio.to_thread(self.store.catalog))
                fields = [("DeviceName", "gridwatch"), ("Result", "OK"),
                          ("Manufacturer", "gridwatch"), ("Model", "gridwatch hub"),
                          ("Firmware", VERSION), ("Channel", str(count))]  # fmt: skip
            elif row is not None:
                fields = [("DeviceName", (row.name or row.device_id)[:100]), ("Result", "OK"),
                          ("Manufacturer", row.vendor or "unknown"),
                          ("Model", row.model or "unknown"),
                          ("Firmware", row.firmware or "unknown")]  # fmt: skip
            else:
                fields = [("Result", "ERROR")]
        elif me or row is not None:
            online = me or (row is not None and row.online)
            fields = [("Result", "OK"), ("Online", "ONLINE" if online else "OFFLINE"),
                      ("Status", "OK" if online else "ERROR")]  # fmt: skip
        else:
            fields = [("Result", "ERROR")]
        head = [("CmdType", query.cmd_type), ("SN", query.sn), ("DeviceID", query.device_id)]
        inner = "".join(f"<{k}>{escape(v)}</{k}>\r\n" for k, v in head + fields)
        await self.message(_wrap(cfg, "Response", inner))


def _local_ip_towards(peer_ip: str, configured: str) -> str:
    """The address the upper platform reaches us at (Via/Contact)."""
    if configured not in ("0.0.0.0", "::", ""):
        return configured
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((peer_ip, 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def config_from_settings(settings: Any, **overrides: Any) -> CascadeConfig:
    """The link's settings from GRIDWATCH_CASCADE_* (and the hub's GRIDWATCH_SIP_*);
    `overrides` (the CLI's options) win. ValueError when no upper platform is set."""
    upper = overrides.pop("upper", None) or settings.cascade_upper
    if not upper:
        raise ValueError("no upper platform: set GRIDWATCH_CASCADE_UPPER or give --upper")
    upper_id, host, port = CascadeConfig.parse_upper(upper)
    cfg = CascadeConfig(
        upper_id=upper_id,
        upper_host=host,
        upper_port=port,
        password=settings.cascade_password or "",
        local_id=settings.sip_id,
        local_domain=settings.sip_domain,
        transport=settings.cascade_transport,
        local_host=settings.sip_host,
        local_port=settings.cascade_port,
        expires=settings.cascade_expires,
        keepalive_s=settings.cascade_keepalive_s,
        region=settings.cascade_region,
        crs=settings.cascade_crs,
        cursor_path=Path(settings.home) / "gb28181" / f"cascade-{upper_id}.json",
    )
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    if cfg.transport not in ("udp", "tcp"):
        raise ValueError(f"transport {cfg.transport!r}: udp or tcp")
    if cfg.region:
        from hardware.region_code import RegionCode

        RegionCode.parse(cfg.region)  # RegionCodeError (a ValueError) when it is not one
    return cfg
