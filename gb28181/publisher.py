"""The gateway's MQTT side: publishes contract-v1 payloads under each device's topics with the
gateway's own broker accounts (each limited to the devices it fronts), and tells the event loop
when the broker has acknowledged."""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.settings import Settings
from hardware.contract import topics
from ingest.mqttclient import PUBACK, PUBLISH_QOS0, _fixed_header

log = logging.getLogger(__name__)
# How long a grant waits for its shard's client to come back after the broker kicked it.
REGRANT_RECONNECT_S = 5.0


class Publisher:
    """A paho MQTT 5 client; publish() returns a future resolved at PUBACK (QoS 1)."""

    def __init__(
        self, settings: Settings, account: tuple[str, str], client_id: str | None = None
    ) -> None:
        self.settings = settings
        self.client_id = client_id or f"gridwatch-gw-{uuid.uuid4().hex[:8]}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(*account)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        # the broker disconnects the client when its account's rules change (a grant): back
        # at once rather than after paho's default second
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=30)  # type: ignore[arg-type]
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._futures: dict[int, asyncio.Future] = {}
        self._early: dict[int, int] = {}
        self._ignore: set[int] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        # callable(topic, payload) on the event loop, set by the gateway
        self.on_command: Callable[[str, bytes], None] | None = None
        self.subscriptions: list[str] = []
        self._qos0: list[bytes] = []
        self._qos0_scheduled = False

    def start(self, loop: asyncio.AbstractEventLoop, timeout: float = 15.0) -> None:
        self.loop = loop
        host, port = self.settings.mqtt_endpoint()
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise ConnectionError(f"MQTT broker at {host}:{port} did not accept the gateway")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the gateway: %s", reason_code)
            return
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        if self.on_command is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.on_command, msg.topic, bytes(msg.payload))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        rc = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        with self._lock:
            fut = self._futures.pop(mid, None)
            if fut is None:
                if mid in self._ignore:
                    self._ignore.discard(mid)
                else:
                    self._early[mid] = rc
                return
        self._resolve(fut, rc)

    def _resolve(self, fut: asyncio.Future, rc: int) -> None:
        def done() -> None:
            if fut.done():
                return
            if rc >= 0x80:
                fut.set_exception(ConnectionError(f"broker refused the message (reason {rc:#x})"))
            else:
                fut.set_result(None)

        assert self.loop is not None
        self.loop.call_soon_threadsafe(done)

    def publish_soon(self, topic: str, payload: bytes) -> None:
        """QoS 0 (heartbeats): queued and written to the broker with everything else queued in
        this turn of the event loop as one write (paho's per-message publish costs ~10x more;
        the same technique as the ingest worker's LeanClient.publish_many)."""
        t = topic.encode("utf-8")
        head = struct.pack("!H", len(t)) + t + b"\x00"  # MQTT 5: empty properties
        self._qos0.append(_fixed_header(PUBLISH_QOS0, len(head) + len(payload)) + head + payload)
        if not self._qos0_scheduled and self.loop is not None:
            self._qos0_scheduled = True
            self.loop.call_soon(self._flush_qos0)

    def _flush_qos0(self) -> None:
        self._qos0_scheduled = False
        blob, self._qos0 = b"".join(self._qos0), []
        if blob and self.client.is_connected():  # like paho's QoS 0: dropped while disconnected
            self.client._packet_queue(PUBACK, blob, 0, 1)  # queued as PUBACK: no message info

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> asyncio.Future | None:
        """Queue a message; for QoS 1 a future done when the broker acknowledged it."""
        info = self.client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            raise ConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")
        mid = info.mid
        if qos == 0:
            with self._lock:
                if self._early.pop(mid, None) is None:
                    if len(self._ignore) > 65_536:  # dropped while disconnected: never called back
                        self._ignore.clear()
                    self._ignore.add(mid)
            return None
        assert self.loop is not None
        fut = self.loop.create_future()
        with self._lock:
            rc = self._early.pop(mid, None)
            if rc is None:
                self._futures[mid] = fut
        if rc is not None:
            self._resolve(fut, rc)
        return fut


class GatewayPublisher:
    """A gateway's broker side: its devices split in `shards` by a hash of their id, each shard
    with a broker account that may publish for that shard's devices only and its own client.

    Least privilege with bounded cost: the broker tries an account's rules one by one, and it
    disconnects an account's client whenever its rules change, so a grant touches one shard.
    A device is granted (grant()) once it has proved itself (a registration with the right
    password, a channel in its parent's catalog, a mapped panel account); a message for a
    device that is not granted is refused by the broker (QoS 1: the future fails)."""

    def __init__(self, settings: Settings, name: str, shards: int = 16) -> None:
        self.settings = settings
        self.name = name
        self.shards = max(1, shards)
        self.granted: dict[int, set[str]] = {}
        self._roles: dict[int, str] = {}  # shard -> the role its client holds
        self._admin: Any = None  # one dynamic-security admin connection, kept between grants
        self._admin_lock = threading.Lock()
        self.pubs: dict[int, Publisher] = {}
        self._passwords: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._wanted: dict[int, set[str]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subscriptions: list[str] = []
        self.on_command: Callable[[str, bytes], None] | None = None
        self.refused = 0  # messages for devices not granted: never sent

    def shard(self, device_id: str) -> int:
        return zlib.crc32(device_id.encode()) % self.shards

    def account(self, k: int) -> str:
        """The gateway name of shard k (broker user gateway-<name>)."""
        return f"{self.name}-{k}" if self.shards > 1 else self.name

    def is_granted(self, device_id: str) -> bool:
        return device_id in self.granted.get(self.shard(device_id), ())

    def _split(self, device_ids: Iterable[str]) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for d in device_ids:
            out.setdefault(self.shard(d), set()).add(d)
        return out

    def _put(self, k: int, ids: set[str]) -> None:
        """(Blocking) give shard k's account exactly `ids`; connect its client the first time."""
        from ingest.broker_acl import DynsecAdmin, gateway_username

        name = self.account(k)
        pub = self.pubs.get(k)
        if pub is not None:
            # The broker disconnects a client whose account's rules change: what the gateway
            # publishes before it is back would go into the closing connection and be lost
            # (the device's first keepalive after its registration), so wait for it below.
            pub.connected.clear()
        with self._admin_lock:
            try:
                if self._admin is None:
                    self._admin = DynsecAdmin(self.settings)
                if k in self._roles:  # its client, password and role are known: 4 commands
                    self._roles[k] = self._admin.regrant_gateway(name, ids, self._roles[k])
                else:
                    password, self._roles[k] = self._admin.put_gateway_role(
                        name, ids, self._passwords.get(k)
                    )
                    self._passwords[k] = password
            except Exception:
                if self._admin is not None:
                    self._admin.close()
                self._admin = None
                self._roles.pop(k, None)  # asked afresh next time
                if pub is not None and pub.client.is_connected():
                    pub.connected.set()
                raise
        if pub is not None and not pub.connected.wait(REGRANT_RECONNECT_S):
            log.warning("%s: not back %.0f s after its rules changed", name, REGRANT_RECONNECT_S)
        user, password = gateway_username(name), self._passwords[k]
        self.granted[k] = set(ids)
        if k not in self.pubs:
            pub = Publisher(self.settings, (user, password), f"gridwatch-{user}")
            pub.subscriptions = self.subscriptions
            pub.on_command = self.on_command
            assert self.loop is not None
            pub.start(self.loop)
            self.pubs[k] = pub

    def start(self, loop: asyncio.AbstractEventLoop, device_ids: Iterable[str] = ()) -> None:
        """(Blocking) grant the devices fronted so far and connect their shards."""
        self.loop = loop
        for k, ids in self._split(device_ids).items():
            self._put(k, ids)

    async def grant(self, device_ids: Iterable[str]) -> None:
        """Let this gateway publish for `device_ids` too (a no-op for those already granted);
        BrokerAdminError / ConnectionError when the broker could not be told."""
        for k, ids in self._split(device_ids).items():
            if ids <= self.granted.get(k, set()):
                continue
            self._wanted.setdefault(k, set()).update(ids)
            lock = self._locks.setdefault(k, asyncio.Lock())
            async with lock:  # one grant of a shard at a time, carrying all asked for meanwhile
                have = self.granted.get(k, set())
                if ids <= have:
                    continue
                wanted = self._wanted.pop(k, set())
                await asyncio.to_thread(self._put, k, have | wanted | ids)

    async def set_devices(self, device_ids: Iterable[str]) -> None:
        """Front exactly `device_ids` from now on: shards whose set changes are re-granted
        (devices re-homed to another gateway, panel accounts removed, lose their rules)."""
        want = self._split(device_ids)
        for k in sorted(set(want) | set(self.granted)):
            lock = self._locks.setdefault(k, asyncio.Lock())
            async with lock:
                ids = want.get(k, set())
                if ids != self.granted.get(k, set()):
                    await asyncio.to_thread(self._put, k, ids)

    def stop(self) -> None:
        for pub in self.pubs.values():
            pub.stop()
        with self._admin_lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None

    def _pub(self, topic: str) -> Publisher | None:
        device_id = topic[len(topics.PREFIX) :].split("/", 1)[0]
        k = self.shard(device_id)
        if device_id not in self.granted.get(k, ()):
            self.refused += 1
            return None
        return self.pubs.get(k)

    def publish_soon(self, topic: str, payload: bytes) -> None:
        """QoS 0 (heartbeats) through the device's shard; dropped when it is not granted."""
        pub = self._pub(topic)
        if pub is not None:
            pub.publish_soon(topic, payload)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> asyncio.Future | None:
        """Through the device's shard; for QoS 1 a future done at PUBACK (failed with
        ConnectionError when the device is not one this gateway fronts)."""
        pub = self._pub(topic)
        if pub is None:
            if qos == 0:
                return None
            assert self.loop is not None
            fut = self.loop.create_future()
            fut.set_exception(ConnectionError(f"{topic}: not a device this gateway fronts"))
            return fut
        return pub.publish(topic, payload, qos)
