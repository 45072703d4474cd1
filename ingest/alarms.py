"""Alarms: exactly-once insertion with merging of repeats, camera linking, and the lifecycle
new -> acknowledged -> dispatched -> resolved | false_alarm (the single implementation)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import Connection, Row, RowMapping, and_, case, cast, func, select
from sqlalchemy.dialects.postgresql import JSON

from gridwatch import schema
from hardware.kinds import KINDS
from ingest.dbconn import Conn, execute
from ingest.events import emit_event, records

OPEN_STATES = ("new", "acknowledged", "dispatched")
CLOSED_STATES = ("resolved", "false_alarm")
# Allowed next states. An operator acknowledges first; dispatching is optional before closing.
NEXT: dict[str, tuple[str, ...]] = {
    "new": ("acknowledged",),
    "acknowledged": ("dispatched", "resolved", "false_alarm"),
    "dispatched": ("resolved", "false_alarm"),
    "resolved": (),
    "false_alarm": (),
}
CAMERA_KINDS: tuple[str, ...] = tuple(sorted(k.name for k in KINDS.values() if k.has_fov))


class AlarmNotFound(LookupError):
    """No alarm with that id."""


class AlarmTransitionError(ValueError):
    """The requested lifecycle step is not allowed from the alarm's current state."""


@dataclass(frozen=True)
class AlarmIn:
    """A validated alarm message (coordinates already WGS 84)."""

    device_id: str
    msg_id: str
    kind: str
    severity: int  # 1 = most severe
    ts: float
    lon: float | None = None
    lat: float | None = None
    detail: dict[str, Any] | None = None


@dataclass
class AlarmOutcome:
    """What store_alarms did: new alarms and merged repeats, as hub events to emit."""

    new: list[dict[str, Any]] = field(default_factory=list)
    merged: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0

    def events(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        out = [("alarm.new", a["region_code"], a) for a in self.new]
        out += [("alarm.updated", a["region_code"], a) for a in self.merged]
        return out


_INSERT_SQL = """
INSERT INTO alarms (device_id, msg_id, kind, severity, position, region_code, raised_at,
                    last_raised_at, detail, outside_region)
SELECT u.d, u.m, u.k, u.s,
       coalesce(u.pos, dv.last_position, dv.position),
       dv.region_code, to_timestamp(u.ts), to_timestamp(u.ts), u.det,
       -- the device put the alarm where its own region does not reach (NULL: no position
       -- given, or no boundary to compare with)
       CASE WHEN u.pos IS NULL OR rg.geom IS NULL THEN NULL ELSE NOT ST_Covers(rg.geom, u.pos) END
FROM (SELECT x.*, CASE WHEN x.lon IS NULL THEN NULL
                       ELSE ST_SetSRID(ST_MakePoint(x.lon, x.lat), 4326) END AS pos
      FROM ROWS FROM (json_to_recordset(%s::json) AS (d bpchar, m text, k text, s int, ts float8,
           lon float8, lat float8, det jsonb)) WITH ORDINALITY AS x(d, m, k, s, ts, lon, lat, det, n)
     ) u
JOIN devices dv ON dv.id = u.d
LEFT JOIN regions rg ON rg.code = dv.region_code
ORDER BY u.n
RETURNING id, device_id, msg_id, kind, severity, region_code, ST_X(position), ST_Y(position),
          raised_at, outside_region
"""

_LINK_SQL = """
WITH a AS (SELECT id, device_id, position FROM alarms WHERE id = ANY(%(ids)s) AND position IS NOT NULL),
covers AS (
    SELECT a.id AS alarm_id, c.id AS device_id, 'covers' AS relation,
           ST_Distance(coalesce(c.position, c.last_position)::geography, a.position::geography) AS dist
    FROM a JOIN devices c ON c.fov IS NOT NULL AND ST_Covers(c.fov, a.position)
    WHERE c.retired_at IS NULL
),
nearest AS (
    SELECT a.id AS alarm_id, n.id AS device_id, 'nearest' AS relation, n.dist
    FROM a CROSS JOIN LATERAL (
        SELECT c.id, ST_Distance(c.position::geography, a.position::geography) AS dist
        FROM devices c
        WHERE c.retired_at IS NULL AND c.position IS NOT NULL
          AND (c.fov IS NOT NULL OR c.kind = ANY(%(camera_kinds)s))
          AND c.position && ST_Expand(
                a.position, %(radius)s / (111320.0 * cos(radians(least(abs(ST_Y(a.position)), 80)))))
        ORDER BY c.position <-> a.position LIMIT %(k)s
    ) n
    WHERE n.dist <= %(radius)s
      AND NOT EXISTS (SELECT 1 FROM covers WHERE covers.alarm_id = a.id)
),
ranked AS (
    SELECT alarm_id, device_id, relation, dist,
           row_number() OVER (PARTITION BY alarm_id ORDER BY dist NULLS LAST, device_id) AS rk
    FROM (SELECT * FROM covers UNION ALL SELECT * FROM nearest) x
)
INSERT INTO alarm_cameras (alarm_id, device_id, rank, relation, distance_m)
SELECT alarm_id, device_id, rk, relation, dist FROM ranked WHERE rk <= %(k)s
ON CONFLICT DO NOTHING
RETURNING alarm_id, device_id, rank, relation, distance_m
"""


def link_cameras(
    conn: Conn, alarm_ids: list[int], radius_m: float = 300.0, k: int = 5
) -> dict[int, list[dict[str, Any]]]:
    """Link alarms to the cameras whose FOV covers them (else the nearest within radius_m)."""
    if not alarm_ids:
        return {}
    rows = execute(
        conn,
        _LINK_SQL,
        {"ids": alarm_ids, "camera_kinds": list(CAMERA_KINDS), "radius": radius_m, "k": k},
    ).fetchall()
    out: dict[int, list[dict[str, Any]]] = {}
    for alarm_id, device_id, rank, relation, dist in sorted(rows, key=lambda r: (r[0], r[2])):
        out.setdefault(alarm_id, []).append(
            {
                "device_id": device_id,
                "rank": rank,
                "relation": relation,
                "distance_m": round(dist, 1) if dist is not None else None,
            }
        )
    return out


MERGE_LOCK_SPACE = b"gridwatch.alarm-merge"  # keeps these advisory keys apart from others


def merge_lock_keys(pairs: list[tuple[str, str]]) -> list[int]:
    """The advisory lock keys of (device, kind) pairs, sorted: every worker takes them in the
    same order, so two batches never wait on each other in a cycle."""
    keys = {
        int.from_bytes(
            hashlib.blake2b(f"{d}\x1f{k}".encode(), digest_size=8, key=MERGE_LOCK_SPACE).digest(),
            "big",
            signed=True,
        )
        for d, k in pairs
    }
    return sorted(keys)


def store_alarms(
    conn: Conn,
    alarms: list[AlarmIn],
    merge_window_s: float = 60.0,
    radius_m: float = 300.0,
    camera_links: int = 5,
) -> AlarmOutcome:
    """Insert alarms exactly once (by device_id, msg_id), merging repeats of an open alarm of the
    same kind from the same device within merge_window_s. Set-based: a handful of statements
    per batch whatever its size. The caller commits (and only then acks the messages)."""
    outcome = AlarmOutcome()
    if not alarms:
        return outcome
    rows = execute(
        conn,
        "INSERT INTO alarm_messages (device_id, msg_id) "
        "SELECT d, m FROM json_to_recordset(%s::json) AS u(d bpchar, m text) "
        "ON CONFLICT DO NOTHING RETURNING device_id, msg_id",
        # Sorted: the same order in every worker (a redelivered message another worker is
        # inserting makes this one wait; never in a cycle).
        (records(("d", "m"), sorted({(a.device_id, a.msg_id) for a in alarms})),),
    ).fetchall()
    accepted = {(r[0], r[1]) for r in rows}
    fresh: list[AlarmIn] = []
    for a in alarms:
        key = (a.device_id, a.msg_id)
        if key in accepted:
            accepted.discard(key)
            fresh.append(a)
    outcome.duplicates = len(alarms) - len(fresh)
    if not fresh:
        return outcome
    fresh.sort(key=lambda a: a.ts)

    pairs = sorted({(a.device_id, a.kind) for a in fresh})
    # Workers on a shared subscription each get some of a device's messages: two repeats of one
    # kind in two workers' batches at once would each find no open alarm and open two. A
    # transaction lock per (device, kind), taken in one global order, makes the second wait
    # for the first's commit and then merge into the alarm it opened.
    execute(
        conn,
        "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::int8[]) AS u(k)",
        (merge_lock_keys(pairs),),
    )
    open_rows = execute(
        conn,
        "SELECT DISTINCT ON (a.device_id, a.kind) a.id, a.device_id, a.kind, "
        "extract(epoch FROM a.last_raised_at)::float8 "
        "FROM alarms a JOIN unnest(%s::bpchar[], %s::text[]) AS u(d, k) "
        "ON a.device_id = u.d AND a.kind = u.k "
        "WHERE a.state IN ('new', 'acknowledged', 'dispatched') "
        "ORDER BY a.device_id, a.kind, a.last_raised_at DESC",
        ([p[0] for p in pairs], [p[1] for p in pairs]),
    ).fetchall()
    # target: ("db", alarm_id) or ("new", index into to_insert); last: newest raise time seen
    open_by_key: dict[tuple[str, str], list] = {
        (r[1], r[2]): [("db", r[0]), float(r[3])] for r in open_rows
    }
    to_insert: list[AlarmIn] = []
    merges: list[tuple[tuple[str, int], AlarmIn]] = []
    for a in fresh:
        key = (a.device_id, a.kind)
        current = open_by_key.get(key)
        if current is not None and abs(a.ts - current[1]) <= merge_window_s:
            merges.append((current[0], a))
            current[1] = max(current[1], a.ts)
        else:
            open_by_key[key] = [("new", len(to_insert)), a.ts]
            to_insert.append(a)

    inserted = execute(
        conn,
        _INSERT_SQL,
        (
            records(
                ("d", "m", "k", "s", "ts", "lon", "lat", "det"),
                [
                    (a.device_id, a.msg_id, a.kind, a.severity, a.ts, a.lon, a.lat, a.detail)
                    for a in to_insert
                ],
            ),
        ),
    ).fetchall()
    new_ids: dict[tuple[str, str], int] = {}
    for r in inserted:
        new_ids[(r[1], r[2])] = r[0]
        outcome.new.append(
            {
                "id": r[0],
                "device_id": r[1],
                "msg_id": r[2],
                "kind": r[3],
                "severity": r[4],
                "region_code": r[5].strip() if r[5] else None,
                "lon": r[6],
                "lat": r[7],
                "raised_at": r[8].isoformat(),
                "state": "new",
                "repeat_count": 1,
                "outside_region": r[9],
            }
        )

    def target_id(target: tuple[str, int]) -> int | None:
        if target[0] == "db":
            return target[1]
        a = to_insert[target[1]]
        return new_ids.get((a.device_id, a.msg_id))

    # Every accepted message points at the alarm it became or was merged into.
    msg_alarm: list[tuple[str, str, int]] = [
        (a.device_id, a.msg_id, new_ids[(a.device_id, a.msg_id)])
        for a in to_insert
        if (a.device_id, a.msg_id) in new_ids
    ]
    agg: dict[int, list] = {}
    for target, a in merges:
        aid = target_id(target)
        if aid is None:
            continue
        msg_alarm.append((a.device_id, a.msg_id, aid))
        entry = agg.setdefault(aid, [0, a.ts, a.severity])
        entry[0] += 1
        entry[1] = max(entry[1], a.ts)
        entry[2] = min(entry[2], a.severity)
    if agg:
        ids = sorted(agg)
        # Locked in id order first: two workers merging repeats into the same alarms wait for
        # each other instead of deadlocking.
        merged = execute(
            conn,
            "WITH l AS (SELECT id FROM alarms WHERE id = ANY(%s::bigint[]) ORDER BY id "
            "FOR NO KEY UPDATE) "
            "UPDATE alarms a SET repeat_count = a.repeat_count + u.n, "
            "last_raised_at = greatest(a.last_raised_at, to_timestamp(u.ts)), "
            "severity = least(a.severity, u.s) "
            "FROM unnest(%s::bigint[], %s::int[], %s::float8[], %s::int[]) AS u(id, n, ts, s), l "
            "WHERE a.id = u.id AND l.id = u.id RETURNING a.id, a.device_id, a.kind, a.severity, a.state, "
            "a.repeat_count, a.last_raised_at, a.region_code",
            (
                ids,
                ids,
                [agg[i][0] for i in ids],
                [agg[i][1] for i in ids],
                [agg[i][2] for i in ids],
            ),
        ).fetchall()
        for r in merged:
            outcome.merged.append(
                {
                    "id": r[0],
                    "device_id": r[1],
                    "kind": r[2],
                    "severity": r[3],
                    "state": r[4],
                    "repeat_count": r[5],
                    "last_raised_at": r[6].isoformat(),
                    "region_code": r[7].strip() if r[7] else None,
                }
            )
    if msg_alarm:
        execute(
            conn,
            "UPDATE alarm_messages m SET alarm_id = u.a "
            "FROM json_to_recordset(%s::json) AS u(d bpchar, m text, a bigint) "
            "WHERE m.device_id = u.d AND m.msg_id = u.m",
            (records(("d", "m", "a"), msg_alarm),),
        )
    if outcome.new:
        ids = [a["id"] for a in outcome.new]
        execute(
            conn,
            "INSERT INTO alarm_events (alarm_id, state, actor, at, note) "
            "SELECT a.id, 'new', 'device:' || a.device_id, a.received_at, 'raised by ' || a.msg_id "
            "FROM alarms a WHERE a.id = ANY(%s)",
            (ids,),
        )
        cams = link_cameras(conn, ids, radius_m, camera_links)
        for a in outcome.new:
            a["cameras"] = cams.get(a["id"], [])
    return outcome


# ---------------------------------------------------------------------------- lifecycle


def _transition(
    conn: Conn, alarm_id: int, target: str, actor: str, note: str | None
) -> dict[str, Any]:
    if not actor or not str(actor).strip():
        raise ValueError("actor: say who is making this change (a user name)")
    row = execute(
        conn,
        "SELECT state, region_code, device_id, kind FROM alarms WHERE id = %s FOR UPDATE",
        (alarm_id,),
    ).fetchone()
    if row is None:
        raise AlarmNotFound(f"alarm {alarm_id} does not exist")
    state, region_code, device_id, kind = row
    if target not in NEXT[state]:
        if not NEXT[state]:
            raise AlarmTransitionError(
                f"alarm {alarm_id} is already {state}; a closed alarm cannot change"
            )
        if state == target:
            raise AlarmTransitionError(f"alarm {alarm_id} is already {state}")
        raise AlarmTransitionError(
            f"alarm {alarm_id} is {state}: it cannot go to {target} "
            f"(allowed next: {', '.join(NEXT[state])})"
        )
    column = {
        "acknowledged": "acknowledged",
        "dispatched": "dispatched",
        "resolved": "closed",
        "false_alarm": "closed",
    }[target]
    now = datetime.now(UTC)
    execute(
        conn,
        f"UPDATE alarms SET state = %s, {column}_by = %s, {column}_at = %s WHERE id = %s",
        (target, actor, now, alarm_id),
    )
    execute(
        conn,
        "INSERT INTO alarm_events (alarm_id, state, actor, at, note) VALUES (%s, %s, %s, %s, %s)",
        (alarm_id, target, actor, now, note),
    )
    payload = {
        "id": alarm_id,
        "device_id": device_id,
        "kind": kind,
        "state": target,
        "previous_state": state,
        "actor": actor,
        "at": now.isoformat(),
        "note": note,
    }
    emit_event(conn, "alarm.updated", region_code, payload)
    return payload


def acknowledge(conn: Conn, alarm_id: int, actor: str, note: str | None = None) -> dict[str, Any]:
    """new -> acknowledged. The caller commits."""
    return _transition(conn, alarm_id, "acknowledged", actor, note)


def dispatch(conn: Conn, alarm_id: int, actor: str, note: str | None = None) -> dict[str, Any]:
    """acknowledged -> dispatched (someone is sent). The caller commits."""
    return _transition(conn, alarm_id, "dispatched", actor, note)


def resolve(conn: Conn, alarm_id: int, actor: str, note: str | None = None) -> dict[str, Any]:
    """acknowledged | dispatched -> resolved. The caller commits."""
    return _transition(conn, alarm_id, "resolved", actor, note)


def mark_false(conn: Conn, alarm_id: int, actor: str, note: str | None = None) -> dict[str, Any]:
    """acknowledged | dispatched -> false_alarm. The caller commits."""
    return _transition(conn, alarm_id, "false_alarm", actor, note)


def history(conn: Conn, alarm_id: int) -> list[dict[str, Any]]:
    """The alarm's trail: every step with who, when and the note, oldest first."""
    rows = execute(
        conn,
        "SELECT state, actor, at, note FROM alarm_events WHERE alarm_id = %s ORDER BY at, id",
        (alarm_id,),
    ).fetchall()
    return [{"state": r[0], "actor": r[1], "at": r[2], "note": r[3]} for r in rows]


def alarm_standings(conn: Connection, ids: list[int]) -> dict[int, Row[Any]]:
    """{id: (region_code, origin, elsewhere)} of those alarms that exist; `elsewhere` when
    another hub made it (federation: that hub decides its steps)."""
    a = schema.alarms
    stmt = select(
        a.c.id,
        a.c.region_code,
        a.c.origin,
        (a.c.origin != func.federation_origin()).label("elsewhere"),
    ).where(a.c.id.in_(ids))
    return {r.id: r for r in conn.execute(stmt)}


def alarm_cameras(conn: Connection, alarm_id: int) -> list[RowMapping]:
    """The cameras linked to the alarm with their optics and position; `relation` is decided
    now: 'covers' when the camera's current sector holds the alarm, else 'nearest'."""
    c, d, a = schema.alarm_cameras, schema.devices, schema.alarms
    here, there = cast(d.c.position, Geography), cast(a.c.position, Geography)
    covers = and_(
        d.c.fov.is_not(None), a.c.position.is_not(None), func.ST_Covers(d.c.fov, a.c.position)
    )
    stmt = (
        select(
            c.c.device_id,
            c.c.rank,
            case((covers, "covers"), else_="nearest").label("relation"),
            func.coalesce(func.ST_Distance(here, there), c.c.distance_m).label("distance_m"),
            func.degrees(func.ST_Azimuth(here, there)).label("bearing_deg"),
            d.c.heading_deg,
            d.c.hfov_deg,
            d.c.name,
            d.c.status,
            d.c.region_code,
            d.c.ptz,
            d.c.presets,
            d.c.focal_mm,
            d.c.focal_max_mm,
            d.c.sensor_format,
            d.c.resolution_w,
            d.c.resolution_h,
            func.ST_X(d.c.position).label("lon"),
            func.ST_Y(d.c.position).label("lat"),
            cast(func.ST_AsGeoJSON(d.c.fov, 7), JSON).label("fov"),
        )
        .select_from(c.join(d, d.c.id == c.c.device_id).join(a, a.c.id == c.c.alarm_id))
        .where(c.c.alarm_id == alarm_id)
    )
    return list(conn.execute(stmt).mappings().all())
