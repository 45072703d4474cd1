"""Which cameras see which intersections: the intersection_views link table, kept current on every change."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text


def relink_devices(
    conn: Connection, device_ids: Iterable[str] | None = None, from_table: str | None = None
) -> int:
    """Recompute the links of some devices (by ids, or every id in a temp table's `id` column)."""
    if from_table is not None:
        ids_sql, params = f"SELECT id FROM {from_table}", {}
    else:
        ids_sql, params = "SELECT unnest(CAST(:ids AS char(20)[]))", {"ids": list(device_ids or [])}
    conn.execute(text(f"DELETE FROM intersection_views WHERE device_id IN ({ids_sql})"), params)
    return conn.execute(
        text(
            "INSERT INTO intersection_views (intersection_id, device_id) "
            f"SELECT i.id, d.id FROM devices d JOIN intersections i ON i.geom && d.fov AND ST_Covers(d.fov, i.geom) "
            f"WHERE d.id IN ({ids_sql}) AND d.fov IS NOT NULL ON CONFLICT DO NOTHING"
        ),
        params,
    ).rowcount


def relink_intersections(conn: Connection, intersection_ids: Iterable[int]) -> int:
    """Recompute the links of some intersections (after an import moved or added them)."""
    ids = list(intersection_ids)
    if not ids:
        return 0
    conn.execute(
        text("DELETE FROM intersection_views WHERE intersection_id = ANY(:ids)"), {"ids": ids}
    )
    return conn.execute(
        text(
            "INSERT INTO intersection_views (intersection_id, device_id) "
            "SELECT i.id, d.id FROM intersections i JOIN devices d ON d.fov && i.geom AND ST_Covers(d.fov, i.geom) "
            "WHERE i.id = ANY(:ids) ON CONFLICT DO NOTHING"
        ),
        {"ids": ids},
    ).rowcount


def rebuild(conn: Connection) -> int:
    """Rebuild every link (after devices' coverage was changed outside the registry)."""
    conn.execute(text("TRUNCATE intersection_views"))
    return conn.execute(
        text(
            "INSERT INTO intersection_views (intersection_id, device_id) "
            "SELECT i.id, d.id FROM intersections i JOIN devices d ON d.fov && i.geom AND ST_Covers(d.fov, i.geom)"
        )
    ).rowcount
