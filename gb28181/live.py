"""Live view: a channel INVITEd to send RTP/PS (GB/T 28181 section 9.2), received here and handed
to FFmpeg as a plain MPEG-PS byte stream (`ffmpeg -f mpeg -i tcp://127.0.0.1:PORT`)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson

log = logging.getLogger(__name__)
MAX_SDP = 4096
MAX_RTP = 65_535
REORDER = 32  # packets held back to put a late one in its place
PS_BUFFER = 8 << 20  # bytes kept for a slow reader; beyond it the oldest are dropped
DEFAULT_SECONDS = 300  # a session ends by itself unless asked again (BYE sent)
MAX_SECONDS = 3600


class SdpError(ValueError):
    """An SDP body that is not a usable answer; the message says why."""


# ---------------------------------------------------------------------------- SDP


def new_ssrc(domain: str) -> str:
    """A live-view SSRC as GB/T 28181 writes it: '0' (real time), digits 4-8 of the domain,
    then 4 digits of our own."""
    return f"0{domain[3:8]}{secrets.randbelow(10_000):04d}"


def sdp_offer(platform_id: str, host: str, port: int, ssrc: str, transport: str = "udp") -> bytes:
    """The hub's offer: receive only, PS (96) preferred, H.264 (98) accepted."""
    proto = "TCP/RTP/AVP" if transport == "tcp" else "RTP/AVP"
    lines = [
        "v=0",
        f"o={platform_id} 0 0 IN IP4 {host}",
        "s=Play",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=video {port} {proto} 96 98",
        "a=recvonly",
        "a=rtpmap:96 PS/90000",
        "a=rtpmap:98 H264/90000",
    ]
    if transport == "tcp":  # the hub listens, the device connects (RFC 4145)
        lines += ["a=setup:passive", "a=connection:new"]
    lines.append(f"y={ssrc}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


@dataclass
class SdpInfo:
    """What a peer's SDP says about its media."""

    host: str | None = None
    port: int | None = None
    transport: str = "udp"
    payloads: list[str] = field(default_factory=list)
    ssrc: str | None = None
    rtpmap: dict[str, str] = field(default_factory=dict)


def parse_sdp(body: bytes) -> SdpInfo:
    """The video media of an SDP body (bounded, ASCII); SdpError when it has none."""
    if len(body) > MAX_SDP:
        raise SdpError(f"SDP larger than {MAX_SDP} bytes")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not ASCII") from exc
    info = SdpInfo()
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        key, value = line[0], line[2:].strip()
        if key == "c":
            parts = value.split()
            if len(parts) == 3 and parts[0] == "IN":
                info.host = parts[2]
        elif key == "m" and value.startswith("video "):
            parts = value.split()
            if len(parts) < 4 or not parts[1].isdigit() or not 0 < int(parts[1]) < 65_536:
                raise SdpError(f"bad media line {value[:60]!r}")
            info.port = int(parts[1])
            info.transport = "tcp" if parts[2].upper().startswith("TCP") else "udp"
            info.payloads = parts[3:][:16]
        elif key == "a" and value.startswith("rtpmap:"):
            pt, _, name = value[7:].partition(" ")
            info.rtpmap[pt] = name.split("/")[0].upper()
        elif key == "y":
            info.ssrc = value[:10]
    if info.port is None:
        raise SdpError("no video media line")
    return info


# ---------------------------------------------------------------------------- RTP


def rtp_payload(packet: bytes) -> tuple[int, int, bytes] | None:
    """(sequence, SSRC, payload) of an RTP packet, None when it is not one (RFC 3550)."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    cc = packet[0] & 0x0F
    start = 12 + 4 * cc
    if packet[0] & 0x10:  # header extension
        if len(packet) < start + 4:
            return None
        start += 4 + 4 * struct.unpack_from("!H", packet, start + 2)[0]
    end = len(packet)
    if packet[0] & 0x20:  # padding
        end -= packet[-1]
    if start > end:
        return None
    seq, ssrc = struct.unpack_from("!H", packet, 2)[0], struct.unpack_from("!I", packet, 8)[0]
    return seq, ssrc, packet[start:end]


def rtp_packet(seq: int, timestamp: int, ssrc: int, payload: bytes, pt: int = 96) -> bytes:
    """An RTP packet (what a device sends; the simulated device uses it)."""
    return struct.pack("!BBHII", 0x80, pt & 0x7F, seq & 0xFFFF, timestamp, ssrc) + payload


class Reorder:
    """Payloads in sequence order: a packet that arrives late by up to REORDER packets takes its
    place; one later than that is dropped (counted)."""

    def __init__(self) -> None:
        self.next: int | None = None
        self.held: dict[int, bytes] = {}
        self.dropped = 0

    def push(self, seq: int, payload: bytes) -> list[bytes]:
        if self.next is None:
            self.next = seq
        ahead = (seq - self.next) & 0xFFFF
        if ahead >= 0x8000:  # behind what was already handed on
            self.dropped += 1
            return []
        self.held[seq] = payload
        out: list[bytes] = []
        while self.next in self.held:
            out.append(self.held.pop(self.next))
            self.next = (self.next + 1) & 0xFFFF
        if len(self.held) > REORDER:  # give up on the missing one
            self.dropped += 1
            while self.next not in self.held:
                self.next = (self.next + 1) & 0xFFFF
            while self.next in self.held:
                out.append(self.held.pop(self.next))
                self.next = (self.next + 1) & 0xFFFF
        return out


class PsFeed:
    """The PS bytes of one session, served on 127.0.0.1 to whoever connects (FFmpeg); a reader
    slower than the camera loses the oldest bytes, never slows the receiver."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.dropped = 0
        self.received = 0
        self.wake = asyncio.Event()
        self.closed = False
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def open(self) -> PsFeed:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def write(self, data: bytes) -> None:
        self.received += len(data)
        self.buffer += data
        if len(self.buffer) > PS_BUFFER:
            cut = len(self.buffer) - PS_BUFFER
            del self.buffer[:cut]
            self.dropped += cut
        self.wake.set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while not self.closed:
                if not self.buffer:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                chunk, self.buffer = bytes(self.buffer), bytearray()
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        self.closed = True
        self.wake.set()
        if self.server is not None:
            self.server.close()


class RtpReceiver:
    """RTP/PS of one session on a UDP port, or on a TCP port the device connects to (RFC 4571
    framing); packets of another SSRC are dropped."""

    def __init__(self, feed: PsFeed, ssrc: str, transport: str = "udp", host: str = "0.0.0.0"):
        self.feed = feed
        self.ssrc = int(ssrc)
        self.transport = transport
        self.host = host
        self.port = 0
        self.reorder = Reorder()
        self.packets = 0
        self.foreign = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None

    async def open(self) -> RtpReceiver:
        loop = asyncio.get_running_loop()
        if self.transport == "tcp":
            self._tcp = await asyncio.start_server(self._client, self.host, 0)
            self.port = self._tcp.sockets[0].getsockname()[1]
        else:
            rx = self

            class _Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr) -> None:
                    rx.packet(data)

            self._udp, _ = await loop.create_datagram_endpoint(_Proto, local_addr=(self.host, 0))
            self.port = self._udp.get_extra_info("sockname")[1]
        return self

    def packet(self, data: bytes) -> None:
        parsed = rtp_payload(data)
        if parsed is None or parsed[1] != self.ssrc:
            self.foreign += 1
            return
        self.packets += 1
        for payload in self.reorder.push(parsed[0], parsed[2]):
            self.feed.write(payload)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                self.packet(await reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()


# ---------------------------------------------------------------------------- the console's side


@dataclass
class LiveInput:
    """An open live view: FFmpeg reads `url` with `ffmpeg_args`; stats from the receiver."""

    device_id: str
    url: str
    rtp_port: int
    transport: str
    ssrc: str
    receiver: RtpReceiver
    feed: PsFeed

    @property
    def ffmpeg_args(self) -> list[str]:
        return ["-f", "mpeg", "-i", self.url]


def live_command(port: int, ssrc: str, transport: str, seconds: int) -> bytes:
    """The command the gateway acts on (gw/v1/{channel}/cmd): INVITE towards this port."""
    return orjson.dumps(
        {"cmd": "live", "port": port, "ssrc": ssrc, "transport": transport, "seconds": seconds}
    )


@asynccontextmanager
async def live_input(
    device_id: str,
    *,
    settings=None,
    transport: str = "udp",
    seconds: int = DEFAULT_SECONDS,
    bind: str = "0.0.0.0",
) -> AsyncIterator[LiveInput]:
    """Open live view of a GB/T 28181 channel (or camera): a receiver on a free port, the
    gateway fronting the device asked (over the broker, the API's account) to INVITE it
    towards that port, and the stream served to FFmpeg until the block ends (then BYE)."""
    from gridwatch.settings import get_settings

    settings = settings or get_settings()
    if transport not in ("udp", "tcp"):
        raise ValueError("transport: udp or tcp")
    ssrc = new_ssrc(settings.sip_domain)
    feed = await PsFeed().open()
    receiver = await RtpReceiver(feed, ssrc, transport, bind).open()
    topic = f"gw/v1/{device_id}/cmd"
    try:
        await asyncio.to_thread(
            _send_command,
            settings,
            topic,
            live_command(receiver.port, ssrc, transport, min(seconds, MAX_SECONDS)),
        )
        yield LiveInput(
            device_id,
            f"tcp://127.0.0.1:{feed.port}",
            receiver.port,
            transport,
            ssrc,
            receiver,
            feed,
        )
    finally:
        try:
            stop = orjson.dumps({"cmd": "live_stop", "port": receiver.port, "ssrc": ssrc})
            await asyncio.to_thread(_send_command, settings, topic, stop)
        except Exception as exc:  # the session also ends by itself after `seconds`
            log.warning("live_stop for %s not sent: %s", device_id, exc)
        receiver.close()
        feed.close()


def _send_command(settings, topic: str, payload: bytes) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = settings.mqtt_endpoint()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(*settings.hub_credentials("api"))
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        if not info.is_published():
            raise ConnectionError(f"the broker did not take the command on {topic}")
    finally:
        client.disconnect()
        client.loop_stop()
