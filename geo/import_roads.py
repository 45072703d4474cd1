"""Importing roads and railways, and deriving intersections where street segments meet.

An intersection is a node where three or more street ends meet, the way osmnx counts
`street_count` on a simplified graph: a way through a node contributes two ends, a way that
starts or ends there one; nodes with two ends (a way continued by the next, a bend) are not
intersections. The topology is the stored lines' shared vertices: OSM files (.osm.pbf, .osm)
bring it with their node ids (a bridge shares no node with the road below); in GeoJSON,
GeoPackage or CSV lines, which have none, lines of one file that cross are given a shared vertex
where they cross unless one is a bridge or tunnel (tags bridge, tunnel, or a non-zero layer).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, text

from geo.device_rows import ewkb_many
from geo.features import FeatureFileError, normalise_crs, prop
from geo.importers import _geometry, _start
from geo.importlog import ImportReport, record_import
from geo.osm import NETWORKS, is_osm_file, read_osm_roads
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
_GRADE_SEPARATED = {"yes", "true", "1", "viaduct", "culvert", "building_passage", "covered"}

# --- roads and railways ------------------------------------------------------------------------

_STAGE = "CREATE TEMP TABLE _roads_in (tbl text, source_key text, name text, class text, geom geometry) ON COMMIT DROP"
_UPSERT = """
INSERT INTO {table} AS t (source_key, name, {cls_col} geom)
SELECT source_key, name, {cls_val} ST_Multi(geom) FROM _roads_in WHERE tbl = '{table}'
ON CONFLICT (source_key) DO UPDATE SET name = EXCLUDED.name, {cls_set} geom = EXCLUDED.geom, updated_at = now()
WHERE (t.name, {cls_cmp} t.geom) IS DISTINCT FROM (EXCLUDED.name, {cls_excl} EXCLUDED.geom)
RETURNING (xmax = 0) AS inserted
"""


def _upsert_sql(table: str) -> str:
    if table == "roads":
        return _UPSERT.format(
            table=table,
            cls_col="class,",
            cls_val="class,",
            cls_set="class = EXCLUDED.class,",
            cls_cmp="t.class,",
            cls_excl="EXCLUDED.class,",
        )
    return _UPSERT.format(table=table, cls_col="", cls_val="", cls_set="", cls_cmp="", cls_excl="")


def _grade_separated(props: dict) -> bool:
    """A bridge or tunnel (or anything on another layer): it meets other roads only at shared vertices."""
    for key in ("bridge", "tunnel"):
        v = prop(props, key)
        if v is not None and str(v).strip().lower() in _GRADE_SEPARATED:
            return True
    layer = prop(props, "layer")
    try:
        return layer is not None and float(str(layer)) != 0
    except ValueError:
        return False


def add_crossing_vertices(geoms: list[BaseGeometry], separated: list[bool]) -> list[BaseGeometry]:
    """Give lines that cross (or touch) without a shared vertex one there, in both lines, unless
    either is grade separated; the point is computed once per pair so both get the same one."""
    idx = [i for i, s in enumerate(separated) if not s]
    if len(idx) < 2:
        return list(geoms)
    arr = np.array([geoms[i] for i in idx], dtype=object)
    tree = shapely.STRtree(arr)
    a, b = tree.query(arr, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    points: dict[int, list] = {}
    for ia, ib, g in zip(a, b, shapely.intersection(arr[a], arr[b]), strict=True):
        for part in shapely.get_parts(g):
            if part.geom_type == "Point":
                points.setdefault(int(ia), []).append(part)
                points.setdefault(int(ib), []).append(part)
    out = list(geoms)
    for i, pts in points.items():
        out[idx[i]] = shapely.snap(arr[i], shapely.MultiPoint(pts), 1e-9)
    return out


def _feature_rows(
    path: str | Path, crs: str | None, layer: str | None
) -> tuple[ImportReport, list[tuple]]:
    ff, report = _start("roads", path, crs, layer)
    rows: list[list] = []
    separated: list[bool] = []
    for f in ff.features:
        key = prop(f.props, "osm_id", "id", "source_key", default=f.fid) or f"line:{f.line}"
        geom = _geometry(f, {"line"}, report, key)
        if geom is None:
            continue
        name = prop(f.props, "name", "名称")
        kind = str(prop(f.props, "railway", "kind", "type", default="")).strip().lower()
        if kind in RAIL_VALUES:
            rows.append(["railways", str(key), name, None, geom, f.line])
            separated.append(True)  # railways are not streets: never noded with them
            continue
        cls = (
            str(prop(f.props, "class", "highway", "fclass", "等级", default="unclassified"))
            .strip()
            .lower()
        )
        rows.append(["roads", str(key), name, cls, geom, f.line])
        separated.append(_grade_separated(f.props))
    noded = add_crossing_vertices([r[4] for r in rows], separated)
    for r, g in zip(rows, noded, strict=True):
        r[4] = g
    return report, [tuple(r) for r in rows]


def _osm_rows(path: Path, crs: str | None, network: str) -> tuple[ImportReport, list[tuple]]:
    if crs is not None and normalise_crs(crs) != "wgs84":
        raise FeatureFileError("an OpenStreetMap file is always WGS 84; leave out --crs")
    osm = read_osm_roads(path, network)
    with path.open("rb") as fh:  # a city's .osm.pbf need not be held in memory to hash it
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    report = ImportReport(kind="roads", path=str(path), sha256=digest, crs="wgs84")
    rows: list[tuple] = []
    for table, ways in (("roads", osm.streets), ("railways", osm.railways)):
        for w in ways:
            geom = LineString(w.runs[0]) if len(w.runs) == 1 else MultiLineString(w.runs)
            name = w.tags.get("name:zh") or w.tags.get("name")
            cls = (
                w.tags.get("highway", "unclassified").strip().lower() if table == "roads" else None
            )
            rows.append((table, f"way/{w.id}", name, cls, geom, None))
    for wid in osm.unplaced:
        report.reject(None, f"way/{wid}", "fewer than 2 of its nodes are in the file")
    report.total = len(rows) + len(osm.unplaced)
    if osm.other_highways:
        report.finding(
            f"{osm.other_highways} highway way(s) outside the {network!r} street network "
            "(footways, paths, service roads, private ...) were left out"
        )
    if osm.partial:
        report.finding(
            f"{osm.partial} way(s) reference nodes missing from the file (cut by the extract); "
            "their parts with located nodes were imported"
        )
    return report, rows


def import_roads(
    conn: Connection,
    path: str | Path,
    crs: str | None = None,
    layer: str | None = None,
    actor: str = "import",
    network: str = "drive",
    reach_m: float = 300.0,
) -> ImportReport:
    """Import roads and railways and derive intersections.

    OSM files (.osm.pbf, .osm, .osm.bz2) are read with pyosmium: the ways of the street network
    `network` (osmnx's "drive", "drive_service" or "all" filters) become roads keyed `way/<id>`,
    railway=rail ways railways. Other files are lines (`highway`/`class`, `name`, `osm_id`);
    railways are the features tagged railway=rail (or kind=railway). Intersections are derived
    from every stored road (see the module docstring), each assigned to the natural village
    containing it or the nearest within `reach_m`; derived intersections no longer present are
    removed, so a changed road file updates them in place.
    """
    path = Path(path)
    if network not in NETWORKS:
        raise ValueError(f"network {network!r}: use one of {', '.join(NETWORKS)}")
    if path.exists() and is_osm_file(path):
        report, rows = _osm_rows(path, crs, network)
    else:
        report, rows = _feature_rows(path, crs, layer)
    seen: dict[tuple[str, str], int | None] = {}
    unique: list[tuple] = []
    for table, key, name, cls, geom, line in rows:
        if (table, key) in seen:
            first = seen[(table, key)]
            report.reject(line, key, f"duplicate id (first at line {first})")
            continue
        seen[(table, key)] = line
        unique.append((table, key, name, cls, geom))
    wkb = ewkb_many([r[4] for r in unique])
    conn.execute(text("DROP TABLE IF EXISTS _roads_in"))
    conn.execute(text(_STAGE))
    raw = conn.connection.driver_connection
    assert raw is not None  # psycopg's connection under SQLAlchemy's
    with raw.cursor() as cur, cur.copy("COPY _roads_in FROM STDIN") as copy:
        for row, g in zip(unique, wkb, strict=True):
            copy.write_row((*row[:4], g))
    counts = Counter(
        bool(r.inserted)
        for table in ("roads", "railways")
        for r in conn.execute(text(_upsert_sql(table)))
    )
    report.inserted, report.updated = counts[True], counts[False]
    report.unchanged = len(unique) - report.inserted - report.updated
    report.derived = derive_intersections(conn, reach_m=reach_m)
    record_import(conn, report, actor)
    return report


# --- derived intersections ---------------------------------------------------------------------

# Street ends per vertex of the stored roads (coordinates to 1e-7°, OSM's precision): 2 for a
# vertex inside a line, 1 at each end; vertices with >= 3 are intersections.
_NODES = """
CREATE TEMP TABLE _rx ON COMMIT DROP AS
WITH parts AS (
  SELECT r.class, ST_RemoveRepeatedPoints((ST_Dump(r.geom)).geom) AS g FROM roads r
), ends AS (
  SELECT p.class, round(ST_X(d.geom) * 1e7)::bigint AS ix, round(ST_Y(d.geom) * 1e7)::bigint AS iy,
         CASE WHEN d.path[1] IN (1, ST_NPoints(p.g)) THEN 1 ELSE 2 END AS n
  FROM parts p, LATERAL ST_DumpPoints(p.g) d WHERE ST_NPoints(p.g) >= 2
)
SELECT format('x:%s,%s', round(ix::numeric / 10000000, 7), round(iy::numeric / 10000000, 7)) AS key,
       sum(n)::int AS degree, bool_or(class = ANY(:main)) AS main_class,
       ST_SetSRID(ST_MakePoint(ix / 1e7, iy / 1e7), 4326) AS g, NULL::bigint AS nv
FROM ends GROUP BY ix, iy HAVING sum(n) >= 3
"""
# The natural village an intersection belongs to: the polygon containing it, else the nearest
# natural village within `reach` metres.
_NV = """
UPDATE _rx x SET nv = coalesce(
  (SELECT n.id FROM natural_villages n
    WHERE ST_Dimension(n.geom) = 2 AND n.geom && x.g AND ST_Covers(n.geom, x.g) LIMIT 1),
  (SELECT n.id FROM natural_villages n
    WHERE n.geom && ST_Expand(x.g, :reach / 111320.0 / cos(radians(ST_Y(x.g))))
      AND ST_DWithin(n.geom::geography, x.g::geography, :reach)
    ORDER BY n.geom <-> x.g LIMIT 1))
"""
_IX = """
INSERT INTO intersections AS i (source_key, natural_village_id, is_main, degree, geom)
SELECT key, nv, degree >= 4 OR main_class, degree, g FROM _rx
ON CONFLICT (source_key) DO UPDATE SET natural_village_id = EXCLUDED.natural_village_id,
  is_main = EXCLUDED.is_main, degree = EXCLUDED.degree, geom = EXCLUDED.geom, updated_at = now()
WHERE (i.natural_village_id, i.is_main, i.degree, i.geom) IS DISTINCT FROM
      (EXCLUDED.natural_village_id, EXCLUDED.is_main, EXCLUDED.degree, EXCLUDED.geom)
RETURNING id, (xmax = 0) AS inserted
"""


def derive_intersections(conn: Connection, reach_m: float = 300.0) -> dict[str, int]:
    """Recompute the road-derived intersections (source_key 'x:lon,lat'); returns counts.

    One is main where four or more street ends meet (a crossing) or a road of a main class
    (residential and up) passes it."""
    conn.execute(text("DROP TABLE IF EXISTS _rx"))
    conn.execute(text(_NODES), {"main": sorted(MAIN_ROAD_CLASSES)})
    conn.execute(text("ANALYZE _rx"))
    conn.execute(text(_NV), {"reach": reach_m})
    moved: list[int] = []
    counts = {"intersections_inserted": 0, "intersections_updated": 0, "intersections_removed": 0}
    for row in conn.execute(text(_IX)):
        counts["intersections_inserted" if row.inserted else "intersections_updated"] += 1
        moved.append(row.id)
    counts["intersections_removed"] = conn.execute(
        text(
            "DELETE FROM intersections WHERE source_key LIKE 'x:%' "
            "AND source_key NOT IN (SELECT key FROM _rx)"
        )
    ).rowcount
    relink_intersections(conn, moved)
    return counts
