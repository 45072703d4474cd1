"""A small GB/T 28181 device simulator (IPCs and NVRs with channels) for the demo, tests and
benchmarks: REGISTER with digest, keepalives, catalog/device-info answers, alarms, positions,
live view (INVITE answered, RTP/PS of an FFmpeg test picture sent until BYE).
Many devices can share one UDP socket or TCP connection."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from gb28181 import live, manscdp, sip
from gb28181.digest import authorization, parse_challenge

_counter = itertools.count(1)


@dataclass
class Channel:
    """One channel an NVR lists in its catalog."""

    device_id: str
    name: str
    lon: float | None = None
    lat: float | None = None
    status: str = "ON"
    civil_code: str = "360121"


@dataclass
class SimDevice:
    """One simulated device: its id, password, edition and channels."""

    device_id: str
    password: str
    edition: int = 2016
    encoding: str = "GB2312"
    channels: list[Channel] = field(default_factory=list)
    catalog_chunk: int = 20
    manufacturer: str = "Hikvision"
    model: str = "DS-7608N"
    firmware: str = "V4.30.005"
    queries: list[str] = field(default_factory=list)
    sn: int = field(default_factory=lambda: random.randrange(1, 50_000))
    answers_catalog: bool = True

    def next_sn(self) -> str:
        self.sn += 1
        return str(self.sn)


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, ep: SimEndpoint) -> None:
        self.ep = ep

    def datagram_received(self, data: bytes, addr) -> None:
        self.ep.on_data(data)


class SimEndpoint:
    """One UDP socket (or TCP connection) that many simulated devices talk through."""

    def __init__(
        self,
        server: tuple[str, int],
        domain: str,
        transport: str = "udp",
        timeout: float = 5.0,
        local_port: int = 0,
    ) -> None:
        self.stream_seconds = 30.0  # the longest a live view is sent without a BYE
        self.bye_received: list[str] = []
        self.server = server
        self.domain = domain
        self.transport = transport
        self.timeout = timeout
        self.devices: dict[str, SimDevice] = {}
        self.pending: dict[str, asyncio.Future] = {}
        self.udp: asyncio.DatagramTransport | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.local = ("127.0.0.1", local_port)  # 0: any free port
        self.tasks: set[asyncio.Task] = set()
        self.received: list[sip.SipMessage] = []
        self.streams: dict[str, Stream] = {}  # Call-ID -> live view being sent

    async def open(self) -> SimEndpoint:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            self.udp, _ = await loop.create_datagram_endpoint(
                lambda: _Proto(self),
                local_addr=self.local if self.local[1] else None,
                remote_addr=self.server,
            )
            self.local = self.udp.get_extra_info("sockname")[:2]
        else:
            reader, self.writer = await asyncio.open_connection(*self.server)
            self.local = self.writer.get_extra_info("sockname")[:2]
            task = asyncio.create_task(self._read(reader))
            self.tasks.add(task)
        return self

    async def _read(self, reader: asyncio.StreamReader) -> None:
        framer = sip.StreamFramer()
        while True:
            data = await reader.read(65_536)
            if not data:
                return
            for raw in framer.feed(data):
                self.on_data(raw)

    def close(self) -> None:
        for stream in self.streams.values():
            stream.stop()
        if self.udp is not None:
            self.udp.close()
        if self.writer is not None:
            self.writer.close()
        for t in self.tasks:
            t.cancel()

    def add(self, device: SimDevice) -> SimDevice:
        self.devices[device.device_id] = device
        return device

    def send_raw(self, data: bytes) -> None:
        if self.udp is not None:
            self.udp.sendto(data)
        elif self.writer is not None:
            self.writer.write(data)

    # ------------------------------------------------------------------ incoming
    def on_data(self, data: bytes) -> None:
        try:
            msg = sip.parse(data, stream=self.transport == "tcp")
        except sip.SipError:
            return
        if not msg.is_request:
            fut = self.pending.pop(msg.call_id, None)
            if fut is not None and not fut.done() and (msg.status or 0) >= 200:
                fut.set_result(msg)
            return
        self.received.append(msg)
        user = sip.uri_user(msg.uri or "")
        if msg.method in ("INVITE", "ACK", "BYE"):
            self._live(msg, user)
            return
        device = self.devices.get(user)
        if device is None:
            self.send_raw(sip.response(msg, 404, "Not Found"))
            return
        self.send_raw(sip.response(msg, 200, "OK"))
        if msg.method == "MESSAGE" and msg.body:
            try:
                body = manscdp.parse(msg.body, msg.charset())
            except manscdp.BodyError:
                return
            device.queries.append(f"{body.root}.{body.cmd_type}")
            if body.root == "Query":
                task = asyncio.create_task(self._answer(device, body))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    def _owner(self, user: str) -> SimDevice | None:
        device = self.devices.get(user)
        if device is not None:
            return device
        for d in self.devices.values():
            if any(c.device_id == user for c in d.channels):
                return d
        return None

    def _live(self, msg: sip.SipMessage, user: str) -> None:
        """INVITE: answer with our SDP (a retransmission gets the same answer); ACK: start
        sending; BYE: stop."""
        stream = self.streams.get(msg.call_id)
        if msg.method == "ACK":
            if stream is not None and stream.task is None:
                stream.task = asyncio.create_task(stream.run())
            return
        if msg.method == "BYE":
            self.send_raw(sip.response(msg, 200, "OK"))
            if stream is not None:
                stream.stop()
                self.bye_received.append(user)
            return
        if stream is not None:
            self.send_raw(stream.answer)
            return
        if self._owner(user) is None:
            self.send_raw(sip.response(msg, 404, "Not Found"))
            return
        try:
            offer = live.parse_sdp(msg.body)
        except live.SdpError:
            self.send_raw(sip.response(msg, 488, "Not Acceptable Here"))
            return
        host = offer.host or self.server[0]
        ssrc = offer.ssrc or "0000000000"
        sdp = (
            f"v=0\r\no={user} 0 0 IN IP4 {self.local[0]}\r\ns=Play\r\n"
            f"c=IN IP4 {self.local[0]}\r\nt=0 0\r\n"
            f"m=video {self.local[1]} {'TCP/RTP/AVP' if offer.transport == 'tcp' else 'RTP/AVP'}"
            f" 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\ny={ssrc}\r\n"
        ).encode()
        answer = sip.response(
            msg,
            200,
            "OK",
            [("Contact", f"<sip:{user}@{self.local[0]}:{self.local[1]}>"),
             ("Content-Type", "APPLICATION/SDP")],
            sdp,
        )  # fmt: skip
        self.streams[msg.call_id] = Stream(
            (host, offer.port or 0), offer.transport, int(ssrc), answer, self.stream_seconds
        )
        self.send_raw(answer)

    async def _answer(self, device: SimDevice, query: manscdp.Body) -> None:
        if query.cmd_type == "Catalog" and device.answers_catalog:
            await self.send_catalog(device, query.sn)
        elif query.cmd_type == "DeviceInfo":
            body = device_body(
                device,
                "Response",
                "DeviceInfo",
                query.sn,
                [
                    ("DeviceName", f"{device.model} {device.device_id[-4:]}"),
                    ("Result", "OK"),
                    ("Manufacturer", device.manufacturer),
                    ("Model", device.model),
                    ("Firmware", device.firmware),
                    ("Channel", str(len(device.channels))),
                ],
            )
            await self.message(device, body)
        elif query.cmd_type == "DeviceStatus":
            body = device_body(
                device,
                "Response",
                "DeviceStatus",
                query.sn,
                [("Result", "OK"), ("Online", "ONLINE"), ("Status", "OK"), ("Record", "OFF")],
            )
            await self.message(device, body)

    async def send_catalog(self, device: SimDevice, sn: str) -> None:
        """The catalog in messages of catalog_chunk items, SumNum = all channels."""
        chunks = [
            device.channels[i : i + device.catalog_chunk]
            for i in range(0, len(device.channels), device.catalog_chunk)
        ] or [[]]
        for chunk in chunks:
            await self.message(device, catalog_body(device, sn, chunk, len(device.channels)))

    # ------------------------------------------------------------------ outgoing
    def build(
        self,
        device: SimDevice,
        method: str,
        body: bytes = b"",
        extra: list[tuple[str, str]] | None = None,
        call_id: str | None = None,
        cseq: int = 1,
    ) -> tuple[str, bytes]:
        call_id = call_id or f"{secrets.token_hex(8)}-{next(_counter)}@{self.local[0]}"
        proto = "TCP" if self.transport == "tcp" else "UDP"
        host, port = self.server
        headers = [
            (
                "Via",
                f"SIP/2.0/{proto} {self.local[0]}:{self.local[1]};rport;branch={sip.new_branch()}",
            ),
            ("From", f"<sip:{device.device_id}@{self.domain}>;tag={sip.new_tag()}"),
            (
                "To",
                f"<sip:{device.device_id if method == 'REGISTER' else '0'}@{self.domain}>",
            ),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Max-Forwards", "70"),
            ("User-Agent", "gridwatch-simdevice"),
            *(extra or []),
        ]
        if device.edition == 2022:
            headers.append(("X-GB-Ver", "3.0"))
        if body:
            headers.append(("Content-Type", "Application/MANSCDP+xml"))
        uri = f"sip:{self.domain}@{host}:{port}" if method == "REGISTER" else f"sip:0@{host}:{port}"
        return call_id, sip.serialize(f"{method} {uri} SIP/2.0", headers, body)

    async def request(self, call_id: str, data: bytes, retransmit: bool = True) -> sip.SipMessage:
        fut = asyncio.get_running_loop().create_future()
        self.pending[call_id] = fut
        self.send_raw(data)
        delay = 0.5
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise TimeoutError(f"no answer to {data[:40]!r}")
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), min(delay, left))
                except TimeoutError:
                    if self.transport != "udp" or not retransmit:
                        continue
                    self.send_raw(data)
                    delay *= 2
        finally:
            self.pending.pop(call_id, None)

    async def register(
        self, device: SimDevice, expires: int = 3600, password: str | None = None
    ) -> int:
        """REGISTER, answering the digest challenge; the final status."""
        extra = [
            ("Contact", f"<sip:{device.device_id}@{self.local[0]}:{self.local[1]}>"),
            ("Expires", str(expires)),
        ]
        call_id, data = self.build(device, "REGISTER", extra=extra)
        first = await self.request(call_id, data)
        if first.status != 401:
            return first.status or 0
        challenge = parse_challenge(first.get("www-authenticate") or "")
        uri = f"sip:{self.domain}@{self.server[0]}:{self.server[1]}"
        auth = authorization(
            challenge, "REGISTER", uri, device.device_id, password or device.password
        )
        call_id, data = self.build(
            device, "REGISTER", extra=[*extra, ("Authorization", auth)], call_id=call_id, cseq=2
        )
        second = await self.request(call_id, data)
        return second.status or 0

    async def message(self, device: SimDevice, body: bytes, method: str = "MESSAGE") -> int:
        call_id, data = self.build(device, method, body)
        answer = await self.request(call_id, data)
        return answer.status or 0

    async def keepalive(self, device: SimDevice) -> int:
        body = device_body(device, "Notify", "Keepalive", device.next_sn(), [("Status", "OK")])
        return await self.message(device, body)

    async def alarm(
        self,
        device: SimDevice,
        *,
        source: str | None = None,
        priority: int = 1,
        method: int = 5,
        alarm_type: int | None = 6,
        when: datetime | None = None,
        lon: float | None = None,
        lat: float | None = None,
        description: str = "入侵检测报警",
        sn: str | None = None,
        notify: bool = False,
    ) -> int:
        """An alarm notification (MESSAGE; NOTIFY with notify=True, as 2022 subscriptions do)."""
        when = when or datetime.now(manscdp.CHINA_TZ)
        fields = [
            ("AlarmPriority", str(priority)),
            ("AlarmMethod", str(method)),
            ("AlarmTime", when.strftime("%Y-%m-%dT%H:%M:%S")),
            ("AlarmDescription", description),
        ]
        if lon is not None and lat is not None:
            fields += [("Longitude", f"{lon:.6f}"), ("Latitude", f"{lat:.6f}")]
        info = f"<Info><AlarmType>{alarm_type}</AlarmType></Info>" if alarm_type else ""
        body = device_body(
            device, "Notify", "Alarm", sn or device.next_sn(), fields, source=source, tail=info
        )
        return await self.message(device, body, "NOTIFY" if notify else "MESSAGE")

    async def position(self, device: SimDevice, lon: float, lat: float, speed: float = 30.0) -> int:
        fields = [
            ("Time", datetime.now(manscdp.CHINA_TZ).strftime("%Y-%m-%dT%H:%M:%S")),
            ("Longitude", f"{lon:.6f}"),
            ("Latitude", f"{lat:.6f}"),
            ("Speed", f"{speed:.1f}"),
            ("Direction", "90"),
            ("Altitude", "20"),
        ]
        body = device_body(device, "Notify", "MobilePosition", device.next_sn(), fields)
        return await self.message(device, body)

    async def catalog_notify(self, device: SimDevice, items: list[tuple[Channel, str]]) -> int:
        """A catalog NOTIFY with events (ADD/DEL/UPDATE/ON/OFF)."""
        body = catalog_body(
            device,
            device.next_sn(),
            [c for c, _ in items],
            len(items),
            root="Notify",
            events=[e for _, e in items],
        )
        return await self.message(device, body, "NOTIFY")


class Stream:
    """A live view a simulated device sends: FFmpeg's test picture, H.264 in MPEG-PS, cut into
    RTP packets (payload type 96) to the address of the hub's offer, over UDP or TCP (RFC 4571),
    in real time, until BYE or `seconds`."""

    CHUNK = 1400

    def __init__(
        self, to: tuple[str, int], transport: str, ssrc: int, answer: bytes, seconds: float
    ) -> None:
        self.to, self.transport, self.ssrc, self.answer = to, transport, ssrc, answer
        self.seconds = seconds
        self.task: asyncio.Task | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.packets = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.proc = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
            "-i", "testsrc=size=320x240:rate=10", "-t", str(self.seconds), "-c:v", "libx264",
            "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10", "-f", "mpeg", "pipe:1",
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self.proc.stdout is not None
        udp: asyncio.DatagramTransport | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            if self.transport == "tcp":
                _, writer = await asyncio.open_connection(*self.to)
            else:
                udp, _ = await loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, remote_addr=self.to
                )
            seq = 0
            while True:
                data = await self.proc.stdout.read(self.CHUNK)
                if not data:
                    break
                ts = int(loop.time() * 90_000) & 0xFFFFFFFF
                packet = live.rtp_packet(seq, ts, self.ssrc, data)
                seq += 1
                self.packets += 1
                if writer is not None:
                    writer.write(len(packet).to_bytes(2, "big") + packet)
                    await writer.drain()
                elif udp is not None:
                    udp.sendto(packet)
        except (ConnectionError, OSError):
            pass
        finally:
            if udp is not None:
                udp.close()
            if writer is not None:
                writer.close()
            self.stop()
            if self.proc is not None:
                await self.proc.wait()  # reaped here, not by a closed loop later

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


def device_body(
    device: SimDevice,
    root: str,
    cmd: str,
    sn: str,
    fields: list[tuple[str, str]],
    source: str | None = None,
    tail: str = "",
) -> bytes:
    """A flat MANSCDP body in the device's encoding (GB2312 or UTF-8), with optional raw tail."""
    from xml.sax.saxutils import escape

    head = [("CmdType", cmd), ("SN", sn), ("DeviceID", source or device.device_id)]
    inner = "".join(f"<{k}>{escape(v)}</{k}>\r\n" for k, v in head + fields) + tail
    text = f'<?xml version="1.0" encoding="{device.encoding}"?>\r\n<{root}>\r\n{inner}</{root}>\r\n'
    return text.encode("gb2312" if device.encoding.upper() == "GB2312" else "utf-8")


def catalog_body(
    device: SimDevice,
    sn: str,
    channels: list[Channel],
    total: int,
    root: str = "Response",
    events: list[str] | None = None,
) -> bytes:
    from xml.sax.saxutils import escape

    items = []
    for i, ch in enumerate(channels):
        parts = [
            f"<DeviceID>{ch.device_id}</DeviceID>",
            f"<Name>{escape(ch.name)}</Name>",
            f"<Manufacturer>{escape(device.manufacturer)}</Manufacturer>",
            "<Model>IP Camera</Model>",
            "<Owner>Owner</Owner>",
            f"<CivilCode>{ch.civil_code}</CivilCode>",
            f"<ParentID>{device.device_id}</ParentID>",
            "<Parental>0</Parental>",
            f"<Status>{ch.status}</Status>",
        ]
        if ch.lon is not None and ch.lat is not None:
            parts += [f"<Longitude>{ch.lon:.6f}</Longitude>", f"<Latitude>{ch.lat:.6f}</Latitude>"]
        if events:
            parts.append(f"<Event>{events[i]}</Event>")
        items.append("<Item>" + "".join(parts) + "</Item>\r\n")
    tail = f'<DeviceList Num="{len(channels)}">\r\n' + "".join(items) + "</DeviceList>\r\n"
    return device_body(device, root, "Catalog", sn, [("SumNum", str(total))], tail=tail)
