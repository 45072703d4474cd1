"""The live event bus: hub_events rows + NOTIFY gw_events '<id>' in the same transaction."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from hardware.region_code import RegionCode
from ingest.dbconn import Conn, execute

CHANNEL = "gw_events"
KINDS = (
    "alarm.new",
    "alarm.updated",
    "device.status",
    "device.position",
    "geofence.enter",
    "geofence.exit",
)
# Taken (per transaction) before an event id is drawn, so ids become visible in id order and a
# reader replaying from `last_id` never skips an event that commits later with a smaller id.
ORDER_LOCK = 0x67770001


@dataclass(frozen=True)
class HubEvent:
    """One event on the bus."""

    id: int
    at: datetime
    kind: str
    region_code: str | None
    payload: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "region_code": self.region_code,
            "payload": self.payload,
        }


def dumps(obj: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON text, encoded by orjson (several times faster than json.dumps on the hot
    path); datetimes go through `default` as before, and anything orjson refuses (integers
    beyond 64 bits, ...) falls back to json.dumps with the same result."""
    try:
        return orjson.dumps(obj, default=default, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except TypeError:
        return json.dumps(obj, default=default, separators=(",", ":"))


def _check_kind(kind: str) -> None:
    if kind not in KINDS and not kind.startswith("x."):
        raise ValueError(f"event kind {kind!r} is not one of {', '.join(KINDS)} (or x.<custom>)")


def emit_event(conn: Conn, kind: str, region_code: str | None, payload: dict[str, Any]) -> int:
    """Record one event and NOTIFY its id; visible to readers when the caller commits."""
    return emit_events(conn, [(kind, region_code, payload)])[0]


def emit_events(conn: Conn, events: Iterable[tuple[str, str | None, dict[str, Any]]]) -> list[int]:
    """Record several events in one statement (same contract as emit_event); their ids in order."""
    rows = []
    for kind, region_code, payload in events:
        _check_kind(kind)
        rows.append({"k": kind, "r": region_code.strip() if region_code else None, "p": payload})
    if not rows:
        return []
    execute(conn, "SELECT pg_advisory_xact_lock(%s)", (ORDER_LOCK,))
    out = execute(
        conn,
        "WITH e AS (INSERT INTO hub_events (kind, region_code, payload) "
        "SELECT u.k, u.r, u.p FROM ROWS FROM (json_to_recordset(%s::json) "
        "AS (k text, r text, p jsonb)) WITH ORDINALITY AS u(k, r, p, n) ORDER BY u.n RETURNING id) "
        "SELECT id, pg_notify('gw_events', id::text) FROM e ORDER BY id",
        (dumps(rows, default=str),),
    ).fetchall()
    return [r[0] for r in out]


def emit_bridged_events(
    conn: Conn, rows: list[tuple[str, int, str, str | None, dict[str, Any]]]
) -> list[int]:
    """Record events other hubs emitted, (origin, its id there, kind, region_code, payload)
    each, in one statement, and NOTIFY them; an event recorded before (same origin and id: a
    repeated delivery) is not recorded again. The new events' ids, in order."""
    for row in rows:
        _check_kind(row[2])
    if not rows:
        return []
    execute(conn, "SELECT pg_advisory_xact_lock(%s)", (ORDER_LOCK,))
    out = execute(
        conn,
        "WITH e AS (INSERT INTO hub_events (kind, region_code, payload, origin, origin_event_id) "
        "SELECT u.k, u.r, u.p, u.o, u.i FROM ROWS FROM (json_to_recordset(%s::json) "
        "AS (o text, i bigint, k text, r text, p jsonb)) WITH ORDINALITY AS u(o, i, k, r, p, n) "
        "ORDER BY u.n ON CONFLICT (origin, origin_event_id) WHERE origin_event_id IS NOT NULL "
        "DO NOTHING RETURNING id) "
        "SELECT id, pg_notify('gw_events', id::text) FROM e ORDER BY id",
        (
            dumps(
                [
                    {"o": o, "i": i, "k": k, "r": r.strip() if r else None, "p": p}
                    for o, i, k, r, p in rows
                ],
                default=str,
            ),
        ),
    ).fetchall()
    return [int(r[0]) for r in out]


def emit_position_events(conn: Conn, moved: list[tuple]) -> list[int]:
    """device.position events for (id, region, ts, lon, lat, speed, heading) rows, payload
    {device_id, ts, lon, lat, speed, heading} built in SQL (the hot path of trackers)."""
    if not moved:
        return []
    execute(conn, "SELECT pg_advisory_xact_lock(%s)", (ORDER_LOCK,))
    out = execute(
        conn,
        "WITH e AS (INSERT INTO hub_events (kind, region_code, payload) "
        "SELECT 'device.position', u.r, json_build_object('device_id', u.d, 'ts', u.ts, "
        "'lon', u.x, 'lat', u.y, 'speed', u.sp, 'heading', u.hd)::jsonb "
        "FROM ROWS FROM (json_to_recordset(%s::json) AS (d text, r text, ts float8, x float8, "
        "y float8, sp float8, hd float8)) WITH ORDINALITY AS u(d, r, ts, x, y, sp, hd, n) "
        "ORDER BY u.n RETURNING id) "
        "SELECT id, pg_notify('gw_events', id::text) FROM e ORDER BY id",
        (records(("d", "r", "ts", "x", "y", "sp", "hd"), moved),),
    ).fetchall()
    return [r[0] for r in out]


def records(keys: tuple[str, ...], rows: list[tuple]) -> str:
    """Rows as a JSON array of objects for json_to_recordset(): one parameter, encoded in C,
    instead of one Python-adapted array per column."""
    return dumps([dict(zip(keys, r, strict=False)) for r in rows])


def _row(r: Any) -> HubEvent:
    payload = r[4] if isinstance(r[4], dict) else json.loads(r[4])
    return HubEvent(int(r[0]), r[1], r[2], r[3].strip() if r[3] else None, payload)


def events_since(
    conn: Conn, last_id: int, region_code: str | None = None, limit: int = 1000
) -> list[HubEvent]:
    """Events with id > last_id, oldest first; with region_code, only that region and below.

    A region matches its own code and every code under it (a county 360121000000 covers
    360121xxxxxx); events without a region are sent to every reader.
    """
    if region_code:
        prefix = RegionCode.parse(region_code).prefix
        rows = execute(
            conn,
            "SELECT id, at, kind, region_code, payload FROM hub_events WHERE id > %s "
            "AND (region_code IS NULL OR region_code LIKE %s) ORDER BY id LIMIT %s",
            (last_id, prefix + "%", limit),
        ).fetchall()
    else:
        rows = execute(
            conn,
            "SELECT id, at, kind, region_code, payload FROM hub_events WHERE id > %s "
            "ORDER BY id LIMIT %s",
            (last_id, limit),
        ).fetchall()
    return [_row(r) for r in rows]


def events_by_id(conn: Conn, ids: list[int]) -> list[HubEvent]:
    """The events with these ids, in id order (the relay reads NOTIFYed ids with this)."""
    rows = execute(
        conn,
        "SELECT id, at, kind, region_code, payload FROM hub_events WHERE id = ANY(%s) ORDER BY id",
        (ids,),
    ).fetchall()
    return [_row(r) for r in rows]


def event_messages_by_id(conn: Conn, ids: list[int]) -> list[bytes]:
    """The events with these ids as relay messages (HubEvent.to_json() as JSON), in id order.

    The payload is spliced in as the database's jsonb text instead of being parsed into Python
    and encoded again: the relay handles every position event, so that was most of its time."""
    rows = execute(
        conn,
        "SELECT id, at, kind, region_code, payload::text FROM hub_events WHERE id = ANY(%s) "
        "ORDER BY id",
        (ids,),
    ).fetchall()
    out = []
    for r in rows:
        head = dumps(
            {
                "id": int(r[0]),
                "at": r[1].isoformat(),
                "kind": r[2],
                "region_code": r[3].strip() if r[3] else None,
            }
        )
        out.append(f'{head[:-1]},"payload":{r[4]}}}'.encode())
    return out


def prune_events(
    conn: Conn,
    older_than_hours: float,
    chunk: int = 20_000,
    pause_s: float = 0.0,
    stop: threading.Event | None = None,
) -> int:
    """Delete events older than the retention, oldest first, `chunk` rows per statement (each
    its own transaction on an autocommit connection, so pruning a busy day never holds one
    long transaction or lock); pause_s between chunks leaves the database to live traffic.
    How many went."""
    total = 0
    while stop is None or not stop.is_set():
        n = execute(
            conn,
            "DELETE FROM hub_events WHERE id IN (SELECT id FROM hub_events "
            "WHERE at < now() - make_interval(secs => %s) ORDER BY id LIMIT %s)",
            (older_than_hours * 3600.0, chunk),
        ).rowcount
        total += max(n, 0)
        if n < chunk:
            break
        if pause_s:
            time.sleep(pause_s)
    return total
