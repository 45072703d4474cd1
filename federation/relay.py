"""The federation relay, one per hub: at a city, each county's bridged live events go into the
city's own event bus (hub_events + NOTIFY, so its pages see them) with their origin; at a county,
alarm commands its city sent are applied through the alarm lifecycle. A county's event arrives at
least once (QoS 1) and is taken once: a repeat of the same origin and event id is dropped.

Conflict rule for alarms changed at both levels: the county's database decides. A command from
the city is one lifecycle transition applied at the county like a local operator's, only if the
alarm's current state allows it there (new -> acknowledged -> dispatched -> resolved |
false_alarm, never backwards); the first transition to commit at the county wins and the later
one is dropped (logged). The outcome, with who did it (`<city>:<user>` for the city's), reaches
the city by replication like every county change.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from federation.bridge import DOWN_LOCAL, FED_PREFIX, down_topic
from federation.replication import HUB_ID

log = logging.getLogger(__name__)
MAX_BYTES = 65_536


class BridgedEvent(BaseModel):
    """One event of a county's bus as its relay published it (ingest.events)."""

    model_config = ConfigDict(extra="ignore")
    id: int
    kind: str = Field(max_length=64)
    region_code: str | None = Field(default=None, max_length=12)
    payload: dict[str, Any]


class AlarmCommand(BaseModel):
    """A city operator's change of a county's alarm."""

    model_config = ConfigDict(extra="forbid")
    alarm_id: int
    state: Literal["acknowledged", "dispatched", "resolved", "false_alarm"]
    by: str = Field(min_length=1, max_length=100)
    note: str | None = Field(default=None, max_length=2000)


def _bounded_json(payload: bytes) -> Any:
    if len(payload) > MAX_BYTES:
        raise ValueError(f"{len(payload)} bytes (> {MAX_BYTES})")
    return json.loads(payload)


def take_event(conn: Any, hub_id: str, payload: bytes) -> int | None:
    """A county's bridged event into this hub's bus, marked with its origin; its new id, or None
    when the same event (origin and its id there) was taken before: a redelivery."""
    from ingest.events import emit_bridged_event

    if not HUB_ID.match(hub_id):
        raise ValueError(f"{hub_id!r} is not a hub id")
    known = conn.execute("SELECT 1 FROM federation_members WHERE hub_id = %s", (hub_id,)).fetchone()
    if not known:
        raise ValueError(f"{hub_id} is not a county of this hub")
    event = BridgedEvent.model_validate(_bounded_json(payload))
    # from_hub: the field the API gives rows of another hub, so the page shows both alike
    body = {**event.payload, "origin": hub_id, "origin_event_id": event.id, "from_hub": hub_id}
    return emit_bridged_event(conn, hub_id, event.id, event.kind, event.region_code, body)


APPLY = {
    "acknowledged": "acknowledge",
    "dispatched": "dispatch",
    "resolved": "resolve",
    "false_alarm": "mark_false",
}


def take_command(conn: Any, command: str, payload: bytes) -> dict[str, Any]:
    """Apply a command from the upstream hub (only `alarm`): one lifecycle transition, by
    `<upstream>:<user>`; AlarmTransitionError when the county's state does not allow it."""
    import ingest.alarms as alarms

    if command != "alarm":
        raise ValueError(f"unknown command {command!r}")
    cmd = AlarmCommand.model_validate(_bounded_json(payload))
    row = conn.execute("SELECT upstream FROM federation_self").fetchone()
    if not row or not row[0]:
        raise ValueError("this hub has no upstream")
    apply = getattr(alarms, APPLY[cmd.state])
    return apply(conn, cmd.alarm_id, f"{row[0]}:{cmd.by}", cmd.note)


def send_command(
    settings: Any, hub_id: str, cmd: AlarmCommand, timeout: float = 10.0, role: str = "federation"
) -> None:
    """At the city: send an alarm command down to a county (QoS 1, with the hub's broker account
    for `role`: the relay's, or the API's for an operator's action)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    if not HUB_ID.match(hub_id):
        raise ValueError(f"{hub_id!r} is not a hub id")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"gw-fed-send-{uuid.uuid4().hex[:10]}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(*settings.hub_credentials(role))
    host, port = settings.mqtt_endpoint()
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        info = client.publish(down_topic(hub_id, "alarm"), cmd.model_dump_json().encode(), qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"the broker did not take the command in {timeout:.0f}s")
    finally:
        client.disconnect()
        client.loop_stop()


class Relay:
    """Both directions of one hub, on its own broker and database (a persistent MQTT session)."""

    def __init__(self, settings: Any, client_id: str = "gridwatch-federation-relay") -> None:
        self.settings = settings
        self.client_id = client_id
        self.stopped = threading.Event()
        self.ready = threading.Event()
        self.taken = 0
        self.refused = 0
        self.repeats = 0

    def _handle(self, conn: Any, topic: str, payload: bytes) -> None:
        from ingest.alarms import AlarmNotFound, AlarmTransitionError

        parts = topic.split("/")
        try:
            if topic.startswith(DOWN_LOCAL) and len(parts) == 5:
                with conn.transaction():
                    take_command(conn, parts[4], payload)
            elif topic.startswith(FED_PREFIX) and len(parts) == 6:
                with conn.transaction():
                    if take_event(conn, parts[2], payload) is None:
                        self.repeats += 1
            else:
                raise ValueError("unexpected topic")
            self.taken += 1
        except (ValueError, ValidationError, AlarmTransitionError, AlarmNotFound) as exc:
            self.refused += 1
            log.warning("federation relay: %s refused: %s", topic, str(exc)[:300])

    def run(self) -> None:
        """Until stop(): take messages one by one, each in its own transaction, then PUBACK."""
        import queue

        import paho.mqtt.client as mqtt
        import psycopg
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        from federation.replication import libpq_url

        inbox: queue.Queue[Any] = queue.Queue(maxsize=10_000)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.username_pw_set(*self.settings.hub_credentials("federation"))

        def on_connect(c, userdata, flags, reason_code, properties) -> None:
            if reason_code.is_failure:
                log.error("federation relay: broker refused: %s", reason_code)
                return
            c.subscribe([("gw/fed/+/v1/hub/events", 1), (DOWN_LOCAL + "#", 1)])

        client.on_connect = on_connect
        client.on_subscribe = lambda *a: self.ready.set()
        client.on_message = lambda c, u, msg: inbox.put(msg)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        host, port = self.settings.mqtt_endpoint()
        client.connect(host, port, keepalive=30, clean_start=False, properties=props)
        client.loop_start()
        try:
            with psycopg.connect(
                libpq_url(self.settings.db_url(role="ingest")), autocommit=True
            ) as conn:
                while not self.stopped.is_set():
                    try:
                        msg = inbox.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    self._handle(conn, msg.topic, msg.payload)
                    client.ack(msg.mid, msg.qos)
        finally:
            client.disconnect()
            client.loop_stop()

    def stop(self) -> None:
        self.stopped.set()
