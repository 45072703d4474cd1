"""The gateway's MQTT side: publishes contract-v1 payloads under each device's topics with the
gateway's own broker account, and tells the event loop when the broker has acknowledged."""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch.settings import Settings
from ingest.mqttclient import PUBACK, PUBLISH_QOS0, _fixed_header

log = logging.getLogger(__name__)


def gateway_account(settings: Settings) -> tuple[str, str]:
    """(user, password) the gateways (GB/T 28181, SIA DC-09) use on the broker.

    The one place to change when the broker gives gateways an account of their own (a role that
    may publish only for the devices a gateway fronts: ingest.broker_acl.gateway_account(name,
    device_ids)); until then the hub's shared `gateway` role (publish under gw/v1/{id}/ for any
    device, read command topics; not the ingest account).
    """
    return settings.hub_credentials("gateway")


class Publisher:
    """A paho MQTT 5 client; publish() returns a future resolved at PUBACK (QoS 1)."""

    def __init__(self, settings: Settings, client_id: str | None = None) -> None:
        self.settings = settings
        self.client_id = client_id or f"gridwatch-gw-{uuid.uuid4().hex[:8]}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        user, password = gateway_account(settings)
        self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._futures: dict[int, asyncio.Future] = {}
        self._early: dict[int, int] = {}
        self._ignore: set[int] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.on_command = None  # callable(topic, payload) on the event loop, set by the gateway
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
