"""Loading a synthetic plan into PostGIS by COPY, and simulated status, presence and quality history."""

from __future__ import annotations

from collections.abc import Iterator

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, text

from simulators.region_plan import Plan

# --- loading -----------------------------------------------------------------------------------


def _copy(conn: Connection, sql: str, rows: Iterator[tuple] | list[tuple]) -> None:
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def _hex(geom: BaseGeometry | None) -> str | None:
    return None if geom is None else shapely.to_wkb(geom, hex=True, include_srid=False)


def load_plan(conn: Connection, plan: Plan) -> dict[str, int]:
    """Write a plan's regions, grids, workers, villages, intersections, roads and key sites."""
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_regions (code text, level smallint, name text, parent text, urc smallint, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_regions FROM STDIN",
        ((c, lv, n, p, u, _hex(g)) for c, lv, n, p, u, g in plan.regions),
    )
    conn.execute(
        text(
            "INSERT INTO regions (code, level, name, parent_code, urban_rural_code, geom) "
            "SELECT code, level, name, parent, urc, ST_SetSRID(geom, 4326) FROM _syn_regions ORDER BY level "
            "ON CONFLICT (code) DO UPDATE SET geom = coalesce(EXCLUDED.geom, regions.geom), "
            "urban_rural_code = coalesce(regions.urban_rural_code, EXCLUDED.urban_rural_code), updated_at = now()"
        )
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_grids (code text, name text, level smallint, parent text, region text, households integer, workers integer, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_grids FROM STDIN",
        (
            (
                g["code"],
                g["name"],
                g["level"],
                g["parent"],
                g["region"],
                g["households"],
                g["workers"],
                _hex(g["geom"]),
            )
            for g in plan.grids
        ),
    )
    for level in (1, 2, 3):
        conn.execute(
            text(
                "INSERT INTO grids (code, name, level, parent_id, region_code, households, geom) "
                "SELECT s.code, s.name, s.level, p.id, s.region, s.households, ST_SetSRID(s.geom, 4326) "
                "FROM _syn_grids s LEFT JOIN grids p ON p.code = s.parent WHERE s.level = :l "
                "ON CONFLICT (code) DO NOTHING"
            ),
            {"l": level},
        )
    conn.execute(
        text(
            "INSERT INTO grid_workers (grid_id, name) SELECT g.id, '网格员' || n FROM _syn_grids s "
            "JOIN grids g ON g.code = s.code CROSS JOIN LATERAL generate_series(1, s.workers) n "
            "WHERE NOT EXISTS (SELECT 1 FROM grid_workers w WHERE w.grid_id = g.id)"
        )
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_nv (local_code text, name text, village text, households integer, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_nv FROM STDIN",
        ((a, b, c, d, _hex(g)) for a, b, c, d, g in plan.natural_villages),
    )
    conn.execute(
        text(
            "INSERT INTO natural_villages (local_code, name, village_code, households, geom, source) "
            "SELECT local_code, name, village, households, ST_SetSRID(geom, 4326), 'synthetic' FROM _syn_nv "
            "ON CONFLICT (local_code) DO NOTHING"
        )
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_ix (key text, nv text, main boolean, degree smallint, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_ix FROM STDIN",
        ((a, b, c, d, _hex(g)) for a, b, c, d, g in plan.intersections),
    )
    conn.execute(
        text(
            "INSERT INTO intersections (source_key, natural_village_id, is_main, degree, geom) "
            "SELECT s.key, n.id, s.main, s.degree, ST_SetSRID(s.geom, 4326) FROM _syn_ix s "
            "JOIN natural_villages n ON n.local_code = s.nv ON CONFLICT (source_key) DO NOTHING"
        )
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_lines (tbl text, key text, name text, class text, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_lines FROM STDIN",
        [
            *(("roads", k, n, c, _hex(g)) for k, n, c, g in plan.roads),
            *(("railways", k, n, None, _hex(g)) for k, n, g in plan.railways),
        ],
    )
    conn.execute(
        text(
            "INSERT INTO roads (source_key, name, class, geom) SELECT key, name, class, ST_Multi(ST_SetSRID(geom, 4326)) "
            "FROM _syn_lines WHERE tbl = 'roads' ON CONFLICT (source_key) DO NOTHING"
        )
    )
    conn.execute(
        text(
            "INSERT INTO railways (source_key, name, geom) SELECT key, name, ST_Multi(ST_SetSRID(geom, 4326)) "
            "FROM _syn_lines WHERE tbl = 'railways' ON CONFLICT (source_key) DO NOTHING"
        )
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_sites (key text, name text, kind text, region text, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_sites FROM STDIN",
        ((a, b, c, d, _hex(g)) for a, b, c, d, g in plan.key_sites),
    )
    conn.execute(
        text(
            "INSERT INTO key_sites (source_key, name, kind, region_code, geom) "
            "SELECT s.key, s.name, s.kind, coalesce(( SELECT r.code FROM regions r WHERE r.level = 5 AND r.geom && g.g "
            "  AND ST_Covers(r.geom, g.g) LIMIT 1), s.region), g.g FROM _syn_sites s "
            "CROSS JOIN LATERAL (SELECT ST_SetSRID(s.geom, 4326) AS g) g ON CONFLICT (source_key) DO NOTHING"
        )
    )
    return {
        "regions": len(plan.regions),
        "townships": sum(1 for r in plan.regions if r[1] == 4),
        "villages": sum(1 for r in plan.regions if r[1] == 5),
        "natural_villages": len(plan.natural_villages),
        "intersections": len(plan.intersections),
        "grids": len(plan.grids),
        "roads": len(plan.roads),
        "railways": len(plan.railways),
        "key_sites": len(plan.key_sites),
    }


def simulate_status(conn: Connection, seed: int, days: int = 7) -> dict[str, int]:
    """Give the generated devices a status, presence history and quality results (when those tables exist).

    About 93% are online now; some of those had an outage during the period; the others went
    offline 1-3 days ago. About 3% of cameras have a video-quality fault.
    """
    h = f"('x' || substr(md5(d.id || '-{int(seed)}'), 1, 8))::bit(32)::int"
    conn.execute(
        text(
            f"UPDATE devices d SET status = CASE WHEN NOT d.networked THEN 'unknown' "
            f"WHEN abs({h}) % 100 < 93 THEN 'online' ELSE 'offline' END, "
            f"last_seen = CASE WHEN NOT d.networked THEN NULL WHEN abs({h}) % 100 < 93 THEN now() - interval '20 seconds' "
            f"ELSE now() - interval '1 day' - (abs({h}) % 48) * interval '1 hour' END, "
            f"registered_at = now() - (30 + abs({h}) % 1500) * interval '1 day' "
            "WHERE d.registered_by = 'synth' AND d.status = 'unknown'"
        )
    )
    out = {"presence_intervals": 0, "health_rows": 0}
    start = f"now() - interval '{int(days)} days'"
    out["presence_intervals"] = conn.execute(
        text(
            "INSERT INTO device_presence (device_id, started_at, ended_at, end_reason) "
            f"SELECT d.id, {start}, CASE WHEN d.status = 'online' AND abs({h}) % 7 <> 0 THEN NULL ELSE "
            f"  CASE WHEN d.status = 'online' THEN {start} + interval '2 days' ELSE d.last_seen END END, "
            f"  CASE WHEN d.status = 'online' AND abs({h}) % 7 <> 0 THEN NULL ELSE 'missed_heartbeats' END "
            "FROM devices d WHERE d.registered_by = 'synth' "
            "AND NOT EXISTS (SELECT 1 FROM device_presence p WHERE p.device_id = d.id)"
        )
    ).rowcount
    out["presence_intervals"] += conn.execute(
        text(
            "INSERT INTO device_presence (device_id, started_at) "
            f"SELECT d.id, {start} + interval '2 days' + (abs({h}) % 10) * interval '1 hour' FROM devices d "
            "WHERE d.registered_by = 'synth' AND d.status = 'online' "
            "AND NOT EXISTS (SELECT 1 FROM device_presence p WHERE p.device_id = d.id AND p.ended_at IS NULL)"
        )
    ).rowcount
    out["health_rows"] = conn.execute(
        text(
            "INSERT INTO camera_health (device_id, ts, intact, faults) "
            f"SELECT d.id, now() - interval '1 hour', abs({h}) % 100 >= 3, "
            f"CASE WHEN abs({h}) % 100 < 3 THEN jsonb_build_array((ARRAY['blur','occlusion','too_dark','frozen'])[1 + abs({h}) % 4]) "
            "ELSE '[]'::jsonb END FROM devices d WHERE d.registered_by = 'synth' AND d.fov IS NOT NULL AND d.networked "
            "ON CONFLICT (device_id, ts) DO NOTHING"
        )
    ).rowcount
    return out
