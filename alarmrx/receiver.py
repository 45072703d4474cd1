"""The SIA DC-09 receiver: panels' messages over TCP and UDP, parsed and checked by pysiaalarm
(CRC, AES, timestamp window), published as contract-v1 MQTT before they are acknowledged."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from pysiaalarm import SIAAccount
from pysiaalarm.errors import EventFormatError, NoAccountError
from pysiaalarm.event import NAKEvent, OHEvent, SIAEvent
from pysiaalarm.utils import ResponseType

from alarmrx.codes import classify
from alarmrx.store import SiaStore
from gb28181.publisher import GatewayPublisher
from gb28181.store import add_pending
from hardware.contract import topics
from hardware.gbid import compose

log = logging.getLogger(__name__)
MAX_LINE = 1024  # a DC-09 message is far shorter; anything longer is refused
_ACCOUNT = re.compile(
    rb'"\*?(?:SIA-DCS|ADM-CID|NULL)"[0-9]{4}(?:R[0-9A-Fa-f]{1,6})?L[0-9A-Fa-f]{1,6}#([0-9A-Fa-f]{3,16})\['
)


@dataclass
class ReceiverConfig:
    """Where the receiver listens (GRIDWATCH_SIA_* settings) and its timestamp window."""

    host: str = "127.0.0.1"
    port: int = 12000
    region: str = "360121"  # region of the ids made up for unknown accounts (pending list)
    timeband: tuple[int, int] = (40, 20)  # seconds before / after now a timestamp may be
    udp: bool = True
    tcp: bool = True


def pending_id(region: str, account: str) -> str:
    """A stable GB/T 28181 id (type 117, alarm controller) for an unknown account, so it can
    wait on the pending-devices list like any unknown device."""
    serial = int(hashlib.sha1(account.upper().encode()).hexdigest(), 16) % 999_999 + 1
    return compose(region, 117, serial).code


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, rx: Receiver) -> None:
        self.rx = rx
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        async def answer() -> None:
            reply = await self.rx.handle(data, addr)
            if reply and self.transport is not None:
                self.transport.sendto(reply, addr)

        task = asyncio.ensure_future(answer())
        self.rx.tasks.add(task)
        task.add_done_callback(self.rx.tasks.discard)


class Receiver:
    """One receiver process: start(), then serve until stop()."""

    def __init__(self, cfg: ReceiverConfig, store: SiaStore, publisher: GatewayPublisher) -> None:
        self.cfg = cfg
        self.store = store
        self.pub = publisher
        self.accounts: dict[str, SIAAccount] = {}
        self.devices: dict[str, str] = {}
        self.stats: Counter[str] = Counter()
        self.tasks: set[asyncio.Task] = set()
        self.udp = None
        self.tcp = None
        self._reload: asyncio.Task | None = None
        # retransmissions seen lately: (account, sequence, code, zone, user) -> (msg_id, when)
        self._recent: OrderedDict[tuple, tuple[str, float]] = OrderedDict()

    async def load_accounts(self) -> None:
        """Panel accounts from the database; the broker lets this receiver publish for exactly
        their devices (granted before an event of a new account can be accepted)."""
        rows = await asyncio.to_thread(self.store.accounts)
        if self.pub.loop is not None:
            await self.pub.set_devices(d for _, d, _ in rows)
        self.accounts = {
            a: SIAAccount(a, key, allowed_timeband=self.cfg.timeband) for a, _, key in rows
        }
        self.devices = {a: d for a, d, _ in rows}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.load_accounts()
        await asyncio.to_thread(self.pub.start, loop, self.devices.values())
        if self.cfg.udp:
            self.udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.cfg.host, self.cfg.port)
            )
        if self.cfg.tcp:
            self.tcp = await asyncio.start_server(
                self._client, self.cfg.host, self.cfg.port, limit=MAX_LINE * 2
            )
        self._reload = asyncio.create_task(self._reloader())
        log.info(
            "SIA DC-09 receiver on %s:%s (udp=%s tcp=%s); %d accounts",
            self.cfg.host,
            self.cfg.port,
            self.cfg.udp,
            self.cfg.tcp,
            len(self.accounts),
        )

    async def stop(self) -> None:
        if self._reload is not None:
            self._reload.cancel()
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
        await asyncio.to_thread(self.pub.stop)

    async def _reloader(self) -> None:
        while True:
            await asyncio.sleep(15)
            try:
                await self.load_accounts()
            except Exception as exc:
                log.warning("accounts not reloaded: %s", exc)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        addr = writer.get_extra_info("peername") or ("?", 0)
        try:
            while True:
                try:
                    data = await reader.readuntil(b"\r")
                except asyncio.LimitOverrunError:
                    self.stats["too_long"] += 1
                    break
                except asyncio.IncompleteReadError:
                    break
                reply = await self.handle(data, addr)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    # ------------------------------------------------------------------ one message
    async def handle(self, data: bytes, addr) -> bytes:
        """The answer to one message (ACK only once what it says is safely on the broker)."""
        self.stats["messages"] += 1
        if len(data) > MAX_LINE:
            self.stats["too_long"] += 1
            return NAKEvent().create_response()
        try:
            line = data.decode("ascii").strip()
        except UnicodeDecodeError:
            self.stats["not_ascii"] += 1
            return NAKEvent().create_response()
        if not line:
            return b""
        try:
            event = SIAEvent.from_line(line, self.accounts)
        except NoAccountError:  # encrypted, for an account we have no key for
            await self._unknown(data, addr)
            return NAKEvent().create_response()
        except (EventFormatError, ValueError) as exc:
            self.stats["bad_format"] += 1
            log.info("refused from %s: %s", addr[0], exc)
            return NAKEvent().create_response()
        if isinstance(event, OHEvent):
            return event.create_response()
        if not event.valid_message:
            self.stats["bad_crc"] += 1
            return NAKEvent().create_response()
        if event.sia_account is None:
            await self._unknown(data, addr)
            return NAKEvent().create_response()
        response = event.response
        if response != ResponseType.ACK:  # DUH (unknown code) or NAK (timestamp outside window)
            self.stats[f"answer_{response.value if response else 'none'}"] += 1
            return event.create_response()
        try:
            await self._deliver(event)
        except Exception as exc:  # broker or database unreachable: the panel will retry
            self.stats["not_delivered"] += 1
            log.warning("event of %s not delivered (%s); NAK", event.account, exc)
            return NAKEvent().create_response()
        self.stats["acked"] += 1
        return event.create_response()

    async def _unknown(self, data: bytes, addr) -> None:
        m = _ACCOUNT.search(data)
        if m is None:
            self.stats["bad_format"] += 1
            return
        account = m.group(1).decode().upper()
        self.stats["unknown_account"] += 1
        device_id = pending_id(self.cfg.region, account)
        payload = {
            "ts": time.time(),
            "status": "sia_unknown_account",
            "metrics": {"via": "sia-dc09", "account": account, "address": f"{addr[0]}:{addr[1]}"},
        }
        # written to the database: this receiver's broker account publishes for mapped panels only
        taken = await asyncio.to_thread(
            add_pending,
            self.store.engine,
            device_id,
            topics.device_topic(device_id, topics.HEARTBEAT),
            orjson.dumps(payload),
        )
        if not taken:
            self.stats["pending_refused"] += 1

    async def _deliver(self, event: SIAEvent) -> None:
        device_id = self.devices[event.sia_account.account_id]
        what, kind, severity = classify(event.code)
        self.stats[what] += 1
        if what == "supervision":
            payload = orjson.dumps({"ts": time.time(), "status": "supervision"})
            fut = self.pub.publish(topics.device_topic(device_id, topics.HEARTBEAT), payload, qos=1)
            if fut is not None:
                await fut
            return
        detail = {
            "sia": {
                "account": event.account,
                "code": event.code,
                "zone": event.ri,
                "user": event.id,
                "partition": event.partition,
                "message": (event.message or "")[:200] or None,
                "description": event.sia_code.description if event.sia_code else None,
                "format": str(getattr(event.message_type, "value", event.message_type)),
                "sequence": event.sequence,
            }
        }
        if what == "restoral":
            note = f"restored at the panel ({event.code}, zone {event.ri or '-'})"
            await asyncio.to_thread(self.store.annotate_restoral, device_id, kind, note, detail)
            return
        ts = event.timestamp.timestamp() if hasattr(event.timestamp, "timestamp") else time.time()
        body: dict[str, Any] = {
            "msg_id": self._msg_id(event),
            "ts": ts,
            "kind": kind,
            "severity": severity,
            "detail": detail,
        }
        fut = self.pub.publish(
            topics.device_topic(device_id, topics.ALARM), orjson.dumps(body), qos=1
        )
        if fut is not None:
            await fut

    def _msg_id(self, event: SIAEvent) -> str:
        """msg_id of the event, the same for a panel's retransmission of it: DC-09 repeats an
        unacknowledged message with the same sequence number, and a panel that stamps the
        retry afresh (or a retry that crosses a second) must not make a second alarm."""
        key = (event.account, event.sequence, event.code, event.ri, event.id)
        now = time.monotonic()
        seen = self._recent.get(key)
        if seen is not None and now - seen[1] < RETRANSMIT_WINDOW_S:
            return seen[0]
        mid = msg_id(event)
        self._recent[key] = (mid, now)
        self._recent.move_to_end(key)
        while len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)
        return mid


RETRANSMIT_WINDOW_S = 120.0  # longer than the timestamp window: a retry is refused after it
RECENT_MAX = 20_000


def msg_id(event: SIAEvent) -> str:
    """Stable per message: a panel's retransmission (same sequence, time, code, zone) maps to
    the same id, so it is stored once."""
    key = "|".join(
        str(x)
        for x in (event.account, event.sequence, event.timestamp, event.code, event.ri, event.id)
    )
    return "sia:" + hashlib.sha1(key.encode()).hexdigest()[:24]
