"""Load a region's registered devices (and roads and railways for movers) as FleetDevices."""

from __future__ import annotations

import json
import logging

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from hardware.kinds import KINDS
from hardware.region_code import region_prefix
from simulators.fleet_model import FleetDevice, synthetic_railway, synthetic_roads
from simulators.fleet_rng import Rng

log = logging.getLogger(__name__)

_DEVICES_SQL = text(
    """
    SELECT id, kind, sub_kind, ST_X(position) AS lon, ST_Y(position) AS lat, heartbeat_s
    FROM devices
    WHERE retired_at IS NULL AND position IS NOT NULL AND registered_by = ANY(:actors)
      AND (:prefix = '' OR region_code LIKE :prefix || '%' OR id LIKE :prefix || '%')
    ORDER BY id
    """
)
# The nearest line parts of a table to a point, longest first among the nearest few.
_NEAREST_LINE_SQL = """
    SELECT ST_AsGeoJSON(part) AS gj
    FROM (
        SELECT (ST_Dump(geom)).geom AS part FROM {table}
        WHERE ST_DWithin(geom::geography, ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, :within)
    ) p
    ORDER BY part <-> ST_SetSRID(ST_Point(:lon, :lat), 4326), ST_Length(part::geography) DESC
    LIMIT 1
"""
ROUTE_SEARCH_M = 5_000.0
# Who registers the devices the simulator may speak for: the region generator and the demo.
# A device a person registered (an installer, an import) is never heartbeated by the
# simulator, so it only looks online when real hardware talks.
SIMULATED_ACTORS: tuple[str, ...] = ("synth", "demo")


def _nearest_line(
    conn: Connection, table: str, lon: float, lat: float
) -> tuple[tuple[float, float], ...] | None:
    row = conn.execute(
        text(_NEAREST_LINE_SQL.format(table=table)),
        {"lon": lon, "lat": lat, "within": ROUTE_SEARCH_M},
    ).first()
    if row is None:
        return None
    coords = json.loads(row.gj)["coordinates"]
    if len(coords) < 2:
        return None
    return tuple((float(x), float(y)) for x, y, *_ in coords)


def load_fleet(
    engine: Engine, region: str | None = None, seed: int = 28181, gcj02_fraction: float = 0.3
) -> list[FleetDevice]:
    """The positioned devices under `region` that a generator registered, ready for the simulator.

    Patrol cars get the nearest road (from `roads`) as their beat, collars the nearest railway
    (from `railways`); when those tables are empty or far away, a synthetic road or railway is
    laid around the device. `gcj02_fraction` of movers report GCJ-02, as phone trackers do.
    """
    prefix = region_prefix(region) if region else ""
    rng = Rng(seed, 0xDB)
    out: list[FleetDevice] = []
    skipped = 0
    with engine.connect() as conn:
        rows = conn.execute(
            _DEVICES_SQL, {"prefix": prefix, "actors": list(SIMULATED_ACTORS)}
        ).all()
        for i, r in enumerate(rows):
            kind = (r.kind or "").strip()
            sub = (r.sub_kind or "").strip() or None
            if kind not in KINDS:
                skipped += 1  # "other" / unknown kinds still heartbeat as a plain device
                kind, sub = "other_peripheral", None
            if sub is not None and sub not in KINDS:
                sub = None
            name = sub or kind
            route = None
            if name == "patrol_car":
                route = _nearest_line(conn, "roads", r.lon, r.lat)
                route = route or tuple(synthetic_roads((r.lon, r.lat), 3000.0, seed + i, 1)[0])
            elif name == "livestock_collar":
                route = _nearest_line(conn, "railways", r.lon, r.lat)
                route = route or tuple(synthetic_railway((r.lon, r.lat), 3000.0, seed + i))
            crs = "gcj02" if route is not None and rng.uniform(i) < gcj02_fraction else "wgs84"
            out.append(
                FleetDevice(
                    id=r.id.strip(),
                    kind=kind,
                    sub_kind=sub,
                    lon=r.lon,
                    lat=r.lat,
                    heartbeat_s=r.heartbeat_s,
                    route=route,
                    crs=crs,
                )
            )
    if skipped:
        log.info("%d device(s) of unknown kind simulated as plain heartbeating devices", skipped)
    return out
