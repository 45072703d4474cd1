"""Importing roads and railways, and deriving intersections where two or more roads meet."""

from __future__ import annotations

from pathlib import Path

import shapely
from sqlalchemy import Connection, text

from geo.features import prop
from geo.import_villages import _IX_UPSERT, _NV_FOR_POINT
from geo.importers import _count, _geometry, _hex, _start
from geo.importlog import ImportReport, record_import
from geo.live import utm_of
from geo.views import relink_intersections

RAIL_VALUES = {"rail", "railway", "铁路", "light_rail", "subway", "high_speed"}
MAIN_ROAD_CLASSES = {
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "residential",
    "unclassified",
    "高速",
    "国道",
    "省道",
    "县道",
    "乡道",
    "村道",
}


# --- roads, railways, derived intersections ----------------------------------------------------

_ROAD_UPSERT = """
INSERT INTO {table} AS t (source_key, name, {extra_cols} geom)
VALUES (:key, :name, {extra_vals} ST_Multi(ST_SetSRID(CAST(:g AS geometry), 4326)))
ON CONFLICT (source_key) DO UPDATE SET name = EXCLUDED.name, {extra_set} geom = EXCLUDED.geom, updated_at = now()
WHERE (t.name, {extra_cmp} t.geom) IS DISTINCT FROM (EXCLUDED.name, {extra_excl} EXCLUDED.geom)
RETURNING (xmax = 0) AS inserted
"""

# Points where two or more distinct roads meet or cross, clustered within `snap` metres
# (in the UTM zone of the roads), with how many roads meet and their classes.
DERIVE_INTERSECTIONS_SQL = """
WITH pairs AS (
  SELECT a.id AS a, b.id AS b, (ST_Dump(ST_Intersection(a.geom, b.geom))).geom AS g
  FROM roads a JOIN roads b ON a.id < b.id AND a.geom && b.geom AND ST_Intersects(a.geom, b.geom)
  -- two pieces of one named road (OSM splits ways) meeting end to end are not an intersection
  WHERE a.name IS NULL OR b.name IS NULL OR a.name <> b.name
), pts AS (
  SELECT a, b, CASE WHEN ST_GeometryType(g) = 'ST_Point' THEN g ELSE ST_StartPoint(g) END AS g FROM pairs
), clustered AS (
  SELECT a, b, g, ST_ClusterDBSCAN(ST_Transform(g, :utm), eps := :snap, minpoints := 1) OVER () AS cid FROM pts
), nodes AS (
  SELECT cid, ST_Centroid(ST_Collect(g)) AS g,
         (SELECT count(DISTINCT coalesce(r.name, r.id::text)) FROM roads r
           WHERE r.id = ANY(array_agg(a) || array_agg(b))) AS degree,
         array_agg(DISTINCT a) || array_agg(DISTINCT b) AS road_ids
  FROM clustered GROUP BY cid
)
SELECT n.degree,
       EXISTS (SELECT 1 FROM roads r WHERE r.id = ANY(n.road_ids) AND r.class = ANY(:main_classes)) AS main_class,
       ST_X(n.g) AS x, ST_Y(n.g) AS y
FROM nodes n
"""


def import_roads(
    conn: Connection,
    path: str | Path,
    crs: str | None = None,
    layer: str | None = None,
    actor: str = "import",
    snap_m: float = 5.0,
    reach_m: float = 300.0,
) -> ImportReport:
    """Import roads and railways (lines; e.g. an OpenStreetMap extract) and derive intersections.

    Railways are the features tagged railway=rail (or kind=railway). Intersections are points
    where >= 2 roads meet, snapped within `snap_m`; one is "main" when >= 3 roads meet or a
    road of a main class (residential and up) passes it. Each is assigned to the natural village
    containing it or the nearest within `reach_m`. Derived intersections no longer present are
    removed, so a changed road file updates them in place.
    """
    ff, report = _start("roads", path, crs, layer)
    for f in ff.features:
        key = prop(f.props, "osm_id", "id", "source_key", default=f.fid) or f"line:{f.line}"
        geom = _geometry(f, {"line"}, report, key)
        if geom is None:
            continue
        name = prop(f.props, "name", "名称")
        is_rail = (
            str(prop(f.props, "railway", "kind", "type", default="")).strip().lower() in RAIL_VALUES
        )
        if is_rail:
            sql = _ROAD_UPSERT.format(
                table="railways",
                extra_cols="",
                extra_vals="",
                extra_set="",
                extra_cmp="",
                extra_excl="",
            )
            params = {"key": str(key), "name": name, "g": _hex(geom)}
        else:
            sql = _ROAD_UPSERT.format(
                table="roads",
                extra_cols="class,",
                extra_vals=":cls,",
                extra_set="class = EXCLUDED.class,",
                extra_cmp="t.class,",
                extra_excl="EXCLUDED.class,",
            )
            cls = (
                str(prop(f.props, "class", "highway", "fclass", "等级", default="unclassified"))
                .strip()
                .lower()
            )
            params = {"key": str(key), "name": name, "cls": cls, "g": _hex(geom)}
        _count(report, conn.execute(text(sql), params).first())
    derived = derive_intersections(conn, snap_m=snap_m, reach_m=reach_m)
    report.derived = derived
    record_import(conn, report, actor)
    return report


def derive_intersections(
    conn: Connection, snap_m: float = 5.0, reach_m: float = 300.0
) -> dict[str, int]:
    """Recompute the road-derived intersections (source_key 'x:lon,lat'); returns counts."""
    rows = conn.execute(
        text(DERIVE_INTERSECTIONS_SQL),
        {
            "snap": snap_m,
            "main_classes": sorted(MAIN_ROAD_CLASSES),
            "utm": utm_of(conn, "roads", "geom"),
        },
    ).all()
    keys: list[str] = []
    moved: list[int] = []
    counts = {"intersections_inserted": 0, "intersections_updated": 0, "intersections_removed": 0}
    for r in rows:
        if r.degree < 2:
            continue
        key = f"x:{r.x:.6f},{r.y:.6f}"
        keys.append(key)
        g = shapely.to_wkb(shapely.Point(r.x, r.y), hex=True)
        nv = conn.execute(text(_NV_FOR_POINT), {"g": g, "reach": reach_m}).scalar()
        row = conn.execute(
            text(_IX_UPSERT),
            {
                "key": key,
                "name": None,
                "nv": nv,
                "main": bool(r.degree >= 3 or r.main_class),
                "degree": int(r.degree),
                "g": g,
            },
        ).first()
        if row is not None:
            counts["intersections_inserted" if row.inserted else "intersections_updated"] += 1
            moved.append(row.id)
    removed = conn.execute(
        text(
            "DELETE FROM intersections WHERE source_key LIKE 'x:%' AND NOT (source_key = ANY(:k))"
        ),
        {"k": keys},
    ).rowcount
    counts["intersections_removed"] = removed
    relink_intersections(conn, moved)
    return counts
