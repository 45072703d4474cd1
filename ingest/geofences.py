"""Geofences: keep-in beats and keep-out zones (polygons or metre buffers around lines such as a
railway), checked against incoming positions to raise enter/exit events and alarms."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ingest.dbconn import Conn, execute

DEFAULT_ALARM = {"keep_out": "geofence_intrusion", "keep_in": "geofence_exit"}


@dataclass(frozen=True)
class Crossing:
    """A device entered or left a geofence."""

    geofence_id: int
    geofence_name: str
    fence_kind: str
    device_id: str
    transition: Literal["enter", "exit"]
    at: datetime
    lon: float
    lat: float
    region_code: str | None
    alarm_kind: str | None  # set when the crossing is a violation (enter keep_out, exit keep_in)
    severity: int


def create_geofence(
    conn: Conn,
    name: str,
    kind: Literal["keep_in", "keep_out"],
    geometry: str | dict,
    *,
    buffer_m: float | None = None,
    device_kinds: list[str] | None = None,
    device_ids: list[str] | None = None,
    alarm_kind: str | None = None,
    severity: int = 2,
    region_code: str | None = None,
) -> int:
    """Create a geofence from WKT or GeoJSON (WGS 84); lines and points need buffer_m (metres).

    A keep_out fence raises an alarm when a device enters it, a keep_in fence when one leaves it.
    device_kinds / device_ids limit which devices it applies to (None: all that report positions).
    """
    if kind not in ("keep_in", "keep_out"):
        raise ValueError(f"geofence kind {kind!r} must be keep_in or keep_out")
    if not 1 <= severity <= 4:
        raise ValueError(f"severity {severity} must be 1-4")
    if buffer_m is not None and buffer_m <= 0:
        raise ValueError(f"buffer_m {buffer_m} must be a positive number of metres")
    if isinstance(geometry, dict):
        src = "ST_SetSRID(ST_GeomFromGeoJSON(%(g)s), 4326)"
        g = json.dumps(geometry)
    else:
        src = "ST_GeomFromText(%(g)s, 4326)"
        g = geometry
    row = execute(
        conn,
        f"""
        WITH s AS (SELECT {src} AS geom)
        INSERT INTO geofences (name, kind, geom, source_geom, buffer_m, device_kinds, device_ids,
                               alarm_kind, severity, region_code)
        SELECT %(name)s, %(kind)s,
               CASE WHEN %(buf)s::float8 IS NULL THEN s.geom
                    ELSE ST_Buffer(s.geom::geography, %(buf)s::float8)::geometry END,
               s.geom, %(buf)s, %(kinds)s, %(ids)s, %(alarm)s, %(sev)s, %(region)s
        FROM s
        WHERE %(buf)s::float8 IS NOT NULL OR ST_Dimension(s.geom) = 2
        RETURNING id
        """,
        {
            "g": g,
            "name": name,
            "kind": kind,
            "buf": buffer_m,
            "kinds": device_kinds,
            "ids": device_ids,
            "alarm": alarm_kind or DEFAULT_ALARM[kind],
            "sev": severity,
            "region": region_code,
        },
    ).fetchone()
    if row is None:
        raise ValueError("a line or point geofence needs buffer_m (metres around it)")
    return int(row[0])


_CHECK_SQL = """
WITH p AS (
    SELECT DISTINCT ON (d) d, ts, lon, lat
    FROM unnest(%s::bpchar[], %s::timestamptz[], %s::float8[], %s::float8[]) AS u(d, ts, lon, lat)
    ORDER BY d, ts DESC
), hits AS (
    SELECT p.d, p.ts, p.lon, p.lat, g.id AS gid, g.name, g.kind AS fkind, g.alarm_kind, g.severity,
           coalesce(g.region_code, dv.region_code) AS region_code,
           ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)) AS inside,
           coalesce(s.inside, g.kind = 'keep_in') AS was_inside
    FROM p JOIN devices dv ON dv.id = p.d
    JOIN geofences g ON g.active
        AND (g.device_kinds IS NULL OR dv.kind = ANY(g.device_kinds))
        AND (g.device_ids IS NULL OR dv.id::text = ANY(g.device_ids))
    LEFT JOIN geofence_state s ON s.device_id = p.d AND s.geofence_id = g.id
), upd AS (
    INSERT INTO geofence_state (device_id, geofence_id, inside, since)
    SELECT d, gid, inside, ts FROM hits WHERE inside IS DISTINCT FROM was_inside
    ON CONFLICT (device_id, geofence_id) DO UPDATE SET inside = excluded.inside, since = excluded.since
)
SELECT gid, name, fkind, d, inside, ts, lon, lat, region_code, alarm_kind, severity
FROM hits WHERE inside IS DISTINCT FROM was_inside
"""


def check_positions(conn: Conn, latest: list[tuple[str, datetime, float, float]]) -> list[Crossing]:
    """Compare each device's newest position in the batch with the fences that apply to it.

    A device with no recorded state is taken to start inside its keep_in fences and outside its
    keep_out fences, so its first position already raises a violation when there is one.
    """
    if not latest:
        return []
    rows = execute(
        conn,
        _CHECK_SQL,
        (
            [x[0] for x in latest],
            [x[1] for x in latest],
            [x[2] for x in latest],
            [x[3] for x in latest],
        ),
    ).fetchall()
    out = []
    for gid, name, fkind, d, inside, ts, lon, lat, region, alarm_kind, severity in rows:
        transition: Literal["enter", "exit"] = "enter" if inside else "exit"
        violation = (fkind == "keep_out" and inside) or (fkind == "keep_in" and not inside)
        out.append(
            Crossing(
                gid,
                name,
                fkind,
                d,
                transition,
                ts,
                lon,
                lat,
                region.strip() if region else None,
                alarm_kind if violation else None,
                severity,
            )
        )
    return out


def record_crossings(
    conn: Conn, crossings: list[Crossing], alarm_ids: dict[tuple[str, str], int]
) -> None:
    """Keep the enter/exit history (with the alarm each violation raised, when there is one)."""
    if not crossings:
        return
    execute(
        conn,
        "INSERT INTO geofence_events (geofence_id, device_id, at, transition, position, alarm_id) "
        "SELECT g, d, at, t, ST_SetSRID(ST_MakePoint(lon, lat), 4326), a FROM unnest("
        "%s::bigint[], %s::bpchar[], %s::timestamptz[], %s::text[], %s::float8[], %s::float8[], "
        "%s::bigint[]) AS u(g, d, at, t, lon, lat, a)",
        (
            [c.geofence_id for c in crossings],
            [c.device_id for c in crossings],
            [c.at for c in crossings],
            [c.transition for c in crossings],
            [c.lon for c in crossings],
            [c.lat for c in crossings],
            [alarm_ids.get((c.device_id, crossing_msg_id(c))) for c in crossings],
        ),
    )


def crossing_msg_id(c: Crossing) -> str:
    """A deterministic alarm msg_id for a crossing, so redelivered positions raise it once."""
    return f"geofence:{c.geofence_id}:{c.transition}:{c.at.timestamp():.3f}"


def crossing_event(c: Crossing) -> tuple[str, str | None, dict[str, Any]]:
    return (
        f"geofence.{c.transition}",
        c.region_code,
        {
            "geofence_id": c.geofence_id,
            "geofence": c.geofence_name,
            "fence_kind": c.fence_kind,
            "device_id": c.device_id,
            "at": c.at.isoformat(),
            "lon": c.lon,
            "lat": c.lat,
            "violation": c.alarm_kind is not None,
        },
    )
