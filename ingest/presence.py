"""Device presence: online from the first message, offline after missed heartbeats or a Last Will,
every online period kept as an interval, and the online rate of a device, grid or region."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, func, or_, select

from gridwatch import schema
from ingest.dbconn import Conn, execute

# One statement per batch: last_seen/status for every device heard from, and the old status
# (self-join reads the pre-update row) so online transitions are found without another query.
_TOUCH_SQL = """
UPDATE devices d SET last_seen = greatest(d.last_seen, %s), status = 'online'
FROM unnest(%s::bpchar[]) AS u(id), devices o
WHERE d.id = u.id AND o.id = u.id
RETURNING d.id, o.status, d.region_code
"""

_OPEN_SQL = """
INSERT INTO device_presence (device_id, started_at)
SELECT id, %s::timestamptz FROM unnest(%s::bpchar[]) AS u(id)
ON CONFLICT (device_id) WHERE ended_at IS NULL DO NOTHING
RETURNING device_id
"""


@dataclass(frozen=True)
class Transition:
    """A device went online or offline."""

    device_id: str
    status: str  # "online" | "offline"
    at: datetime
    region_code: str | None
    reason: str | None = None

    def event_payload(self) -> dict:
        return {
            "device_id": self.device_id,
            "status": self.status,
            "at": self.at.isoformat(),
            "reason": self.reason,
        }


def id_array(ids: Iterable[str]) -> str:
    """A PostgreSQL array literal of device ids (digits only, so nothing needs quoting); much
    cheaper to send than a Python list adapted element by element."""
    return "{" + ",".join(ids) + "}"


def touch(conn: Conn, ids: Iterable[str], at: datetime) -> list[Transition]:
    """Mark devices heard from as online (one UPDATE ... FROM unnest) and open their intervals."""
    ids = list(ids)
    if not ids:
        return []
    rows = execute(conn, _TOUCH_SQL, (at, id_array(ids))).fetchall()
    fresh = {r[0]: r[2] for r in rows if r[1] != "online"}
    if not fresh:
        return []
    opened = execute(conn, _OPEN_SQL, (at, id_array(fresh))).fetchall()
    return [
        Transition(r[0], "online", at, fresh[r[0]].strip() if fresh[r[0]] else None) for r in opened
    ]


def go_offline(conn: Conn, gone: dict[str, datetime], reason: str) -> list[Transition]:
    """Devices that said offline (Last Will or state message): close intervals, mark offline."""
    if not gone:
        return []
    ids = list(gone)
    rows = execute(
        conn,
        """
        WITH u AS (SELECT * FROM unnest(%s::bpchar[], %s::timestamptz[]) AS u(id, at)),
        closed AS (
            UPDATE device_presence p SET ended_at = greatest(u.at, p.started_at), end_reason = %s
            FROM u WHERE p.device_id = u.id AND p.ended_at IS NULL RETURNING p.device_id
        )
        UPDATE devices d SET status = 'offline' FROM u
        WHERE d.id = u.id AND d.status <> 'offline'
        RETURNING d.id, d.region_code, u.at
        """,
        (ids, [gone[i] for i in ids], reason),
    ).fetchall()
    return [Transition(r[0], "offline", r[2], r[1].strip() if r[1] else None, reason) for r in rows]


def sweep(
    conn: Conn, missed: int, missed_by_kind: dict[str, int], limit: int = 5000
) -> list[Transition]:
    """Devices silent for more than `missed` heartbeat intervals (per kind overrides) go offline.

    The interval ends when the first missed heartbeat was due (last_seen + heartbeat_s). At most
    `limit` devices per call (a wave after an outage is spread over a few sweeps instead of
    stalling ingest), and rows another worker is sweeping are skipped, not waited for.
    """
    kinds = list(missed_by_kind)
    rows = execute(
        conn,
        """
        WITH k AS (SELECT * FROM unnest(%s::text[], %s::int[]) AS k(kind, n)),
        due AS (
            SELECT d.id FROM devices d
            -- a device another hub federates here is that hub's to sweep (federation/)
            WHERE d.status = 'online' AND d.origin = (SELECT federation_origin())
              AND d.last_seen < now() - make_interval(
                secs => d.heartbeat_s * coalesce((SELECT n FROM k WHERE k.kind = d.kind), %s))
            LIMIT %s FOR UPDATE SKIP LOCKED
        ),
        gone AS (
            UPDATE devices d SET status = 'offline' FROM due WHERE d.id = due.id
            RETURNING d.id, d.region_code,
                      least(d.last_seen + make_interval(secs => d.heartbeat_s), now()) AS at
        ),
        closed AS (
            UPDATE device_presence p SET ended_at = greatest(g.at, p.started_at),
                   end_reason = 'missed_heartbeats'
            FROM gone g WHERE p.device_id = g.id AND p.ended_at IS NULL
        )
        SELECT id, region_code, at FROM gone
        """,
        (kinds, [missed_by_kind[k] for k in kinds], missed, limit),
    ).fetchall()
    return [
        Transition(r[0], "offline", r[2], r[1].strip() if r[1] else None, "missed_heartbeats")
        for r in rows
    ]


@dataclass(frozen=True)
class OnlineRate:
    """Online time over expected time of the devices in scope during [start, end)."""

    rate: float | None  # None when no device existed in the period
    online_s: float
    expected_s: float
    devices: int


_RATE_SQL = """
WITH RECURSIVE sub_regions AS (
    SELECT code FROM regions WHERE code = %(region)s
    UNION ALL SELECT r.code FROM regions r JOIN sub_regions s ON r.parent_code = s.code
), sub_grids AS (
    SELECT id FROM grids WHERE id = %(grid)s
    UNION ALL SELECT g.id FROM grids g JOIN sub_grids s ON g.parent_id = s.id
), devs AS (
    SELECT id, greatest(registered_at, %(start)s) AS a,
           least(coalesce(retired_at, 'infinity'::timestamptz), %(end)s, now()) AS b
    FROM devices
    WHERE {scope}
), spans AS (
    SELECT sum(greatest(extract(epoch FROM b - a), 0)) AS expected,
           count(*) FILTER (WHERE b > a) AS n
    FROM devs
), online AS (
    SELECT sum(greatest(extract(epoch FROM
               least(coalesce(p.ended_at, now()), d.b) - greatest(p.started_at, d.a)), 0)) AS s
    FROM device_presence p JOIN devs d ON d.id = p.device_id
    WHERE p.started_at < d.b AND coalesce(p.ended_at, now()) > d.a
)
SELECT coalesce(online.s, 0), coalesce(spans.expected, 0), spans.n FROM spans, online
"""


def online_rate(conn: Conn, scope: str | int, start: datetime, end: datetime) -> OnlineRate:
    """Online rate of a device (20-digit id), a region (12-digit code, with everything under it)
    or a grid (int id, or its code, with its sub-grids) over [start, end).

    Expected time counts each device only while it was registered (and not retired) and never
    past now; an interval still open counts up to now.
    """
    if end <= start:
        raise ValueError(
            f"online_rate: end {end.isoformat()} is not after start {start.isoformat()}"
        )
    params = {"region": None, "grid": None, "start": start, "end": end, "device": None}
    if isinstance(scope, int):
        params["grid"], where = scope, "grid_id IN (SELECT id FROM sub_grids)"
    elif scope.isdigit() and len(scope) == 20:
        params["device"], where = scope, "id = %(device)s"
    elif scope.isdigit() and len(scope) == 12:
        from hardware.region_code import region_prefix

        params["region"] = scope
        params["prefix"] = region_prefix(scope) + "%"
        where = "(region_code IN (SELECT code FROM sub_regions) OR region_code LIKE %(prefix)s)"
    else:
        row = execute(conn, "SELECT id FROM grids WHERE code = %s", (scope,)).fetchone()
        if row is None:
            raise ValueError(
                f"online_rate: {scope!r} is not a 20-digit device id, a 12-digit region code "
                "or a grid id/code"
            )
        params["grid"], where = int(row[0]), "grid_id IN (SELECT id FROM sub_grids)"
    online_s, expected_s, n = execute(conn, _RATE_SQL.format(scope=where), params).fetchone()
    online_s, expected_s = float(online_s), float(expected_s)
    rate = min(online_s / expected_s, 1.0) if expected_s > 0 else None
    return OnlineRate(rate, online_s, expected_s, int(n or 0))


def online_periods(
    conn: Connection, device_id: str, hours: int, limit: int = 2000
) -> tuple[datetime, datetime, list[Row[Any]]]:
    """(since, now, periods) of the last `hours` by the database's clock: each period's start
    (clipped to since), end (NULL while it lasts) and end_reason, oldest first."""
    now: datetime = conn.execute(select(func.now())).scalar_one()
    since = now - timedelta(hours=hours)
    p = schema.device_presence
    stmt = (
        select(
            func.greatest(p.c.started_at, since).label("start"),
            p.c.ended_at.label("end"),
            p.c.end_reason,
        )
        .where(
            p.c.device_id == device_id,
            p.c.started_at < now,
            or_(p.c.ended_at.is_(None), p.c.ended_at > since),
        )
        .order_by(p.c.started_at)
        .limit(limit)
    )
    return since, now, list(conn.execute(stmt).all())
