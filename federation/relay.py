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

from federation.bridge import DOWN_LOCAL, FED_PREFIX, down_topic, up_topic
from federation.replication import HUB_ID

log = logging.getLogger(__name__)
MAX_BYTES = 65_536
#: Messages taken in one transaction at most.
BATCH = 500


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


Row = tuple[str, int, str, str | None, dict[str, Any]]


def bridged_row(hub_id: str, payload: bytes) -> Row:
    """A county's bridged event as a row for this hub's bus (ValueError or ValidationError when
    it is not one): marked with its origin, its id there and `from_hub`, the field the API gives
    rows of another hub, so the page shows both alike."""
    if not HUB_ID.match(hub_id):
        raise ValueError(f"{hub_id!r} is not a hub id")
    event = BridgedEvent.model_validate(_bounded_json(payload))
    body = {**event.payload, "origin": hub_id, "origin_event_id": event.id, "from_hub": hub_id}
    return hub_id, event.id, event.kind, event.region_code, body


def take_events(conn: Any, rows: list[Row]) -> tuple[int, list[Row]]:
    """Bridged events into this hub's bus in one statement: (how many were new, the rows of hubs
    that are not counties of this one, refused). A redelivered event (same origin and id) is
    taken before and not again."""
    from ingest.events import emit_bridged_events

    hubs = sorted({r[0] for r in rows})
    known = {
        r[0]
        for r in conn.execute(
            "SELECT hub_id FROM federation_members WHERE hub_id = ANY(%s)", (hubs,)
        ).fetchall()
    }
    return (
        len(emit_bridged_events(conn, [r for r in rows if r[0] in known])),
        [r for r in rows if r[0] not in known],
    )


def take_event(conn: Any, hub_id: str, payload: bytes) -> bool:
    """One county's bridged event into this hub's bus: True if new, False for a redelivery."""
    new, refused = take_events(conn, [bridged_row(hub_id, payload)])
    if refused:
        raise ValueError(f"{hub_id} is not a county of this hub")
    return new == 1


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

    def _refuse(self, topic: str, why: object) -> None:
        self.refused += 1
        log.warning("federation relay: %s refused: %s", topic, str(why)[:300])

    def _handle(self, conn: Any, batch: list[Any]) -> None:
        """One batch, in the caller's transaction: commands one by one (each in a savepoint: a
        refused one undoes only itself), events validated here and inserted in one statement."""
        from ingest.alarms import AlarmNotFound, AlarmTransitionError

        rows: list[Row] = []
        for msg in batch:
            parts = msg.topic.split("/")
            try:
                if msg.topic.startswith(DOWN_LOCAL) and len(parts) == 5:
                    with conn.transaction():
                        take_command(conn, parts[4], msg.payload)
                    self.taken += 1
                elif msg.topic.startswith(FED_PREFIX) and len(parts) == 6:
                    rows.append(bridged_row(parts[2], msg.payload))
                else:
                    raise ValueError("unexpected topic")
            except (ValueError, ValidationError, AlarmTransitionError, AlarmNotFound) as exc:
                self._refuse(msg.topic, exc)
        if rows:
            new, strangers = take_events(conn, rows)
            for r in strangers:
                self._refuse(up_topic(r[0]), f"{r[0]} is not a county of this hub")
            self.taken += len(rows) - len(strangers)
            self.repeats += len(rows) - len(strangers) - new

    def run(self) -> None:
        """Until stop(): take what has arrived (up to BATCH messages) in one transaction, then
        PUBACK them: one commit per batch instead of per event, so the relay keeps up with a busy
        county (a crash before the PUBACKs redelivers the batch, which is then taken once)."""
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
                        batch = [inbox.get(timeout=0.2)]
                    except queue.Empty:
                        continue
                    while len(batch) < BATCH:
                        try:
                            batch.append(inbox.get_nowait())
                        except queue.Empty:
                            break
                    with conn.transaction():
                        self._handle(conn, batch)
                    for msg in batch:
                        client.ack(msg.mid, msg.qos)
        finally:
            client.disconnect()
            client.loop_stop()

    def stop(self) -> None:
        self.stopped.set()
