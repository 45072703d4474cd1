"""The worker's paho-mqtt client, lean on the hot path: PUBLISH decoded without MQTT 5 property
objects or topic matching, and QoS 1 acks sent many per write."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

PUBACK = 0x40
PUBLISH_QOS0 = 0x30
# sink(topic, payload, qos, mid, retain)
Sink = Callable[[str, bytes, int, int, bool], None]


class LeanClient(mqtt.Client):
    """paho Client whose inbound QoS 0/1 PUBLISH goes straight to `sink` (set before connect).

    Profiling the worker showed half of paho's receive thread in building a Properties object
    for every MQTT 5 PUBLISH and in matching topics against message_callback_add filters; the
    worker needs neither (publish properties are ignored, there are no filtered callbacks).
    QoS 2 and anything unusual falls back to paho's own handling. Relies on paho 2.x internals
    (`_in_packet`, `_packet_queue`), pinned in pyproject (paho-mqtt>=2,<3) and exercised by
    every worker test.
    """

    sink: Sink | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        command = self._in_packet["command"]
        qos = (command & 0x06) >> 1
        sink = self.sink
        if sink is None or qos > 1:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        (tlen,) = struct.unpack_from("!H", packet, 0)
        pos = 2 + tlen
        topic = bytes(packet[2:pos])
        mid = 0
        if qos:
            (mid,) = struct.unpack_from("!H", packet, pos)
            pos += 2
        if self._protocol == mqtt.MQTTv5:  # skip the properties (variable byte integer length)
            plen, mult = 0, 1
            while True:
                byte = packet[pos]
                pos += 1
                plen += (byte & 0x7F) * mult
                if not byte & 0x80:
                    break
                mult *= 128
            pos += plen
        try:
            topic_str = topic.decode("utf-8")
        except UnicodeDecodeError:
            topic_str = topic.decode("utf-8", errors="replace")
        sink(topic_str, bytes(packet[pos:]), qos, mid, bool(command & 0x01))
        if qos and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Iterable[int]) -> None:
        """Acknowledge many QoS 1 messages with one queued write (4-byte PUBACKs, reason 0)."""
        blob = b"".join(struct.pack("!BBH", PUBACK, 2, mid) for mid in mids)
        if blob:
            self._packet_queue(PUBACK, blob, 0, 1)

    def publish_many(self, topic: str, payloads: Iterable[bytes]) -> int:
        """Publish QoS 0 messages on one topic with one queued write (no per-message
        MQTTMessageInfo); how many. Like paho's QoS 0 publish, nothing is queued while the
        client is not connected (the messages are dropped)."""
        if not self.is_connected():
            return 0
        t = topic.encode("utf-8")
        head = struct.pack("!H", len(t)) + t + (b"\x00" if self._protocol == mqtt.MQTTv5 else b"")
        parts: list[bytes] = []
        for p in payloads:
            parts.append(_fixed_header(PUBLISH_QOS0, len(head) + len(p)))
            parts.append(head)
            parts.append(p)
        if parts:
            # Queued as a PUBACK-type packet so paho does not look for a per-message info.
            self._packet_queue(PUBACK, b"".join(parts), 0, 1)
        return len(parts) // 3


def _fixed_header(command: int, remaining: int) -> bytes:
    """An MQTT fixed header: the command byte and the remaining length as a varint."""
    out = bytearray([command])
    while True:
        byte = remaining % 128
        remaining //= 128
        if remaining:
            byte |= 0x80
        out.append(byte)
        if not remaining:
            return bytes(out)
