"""Place names for a map view: regions, natural villages and roads as labelled points."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

# Raw SQL earns its place here as in the MVT tiles: one CTE over three tables that PostGIS runs
# whole (clipping roads to the view, one label per road name, turned along its longest piece);
# every input is a bound parameter.
_LABELS_SQL = """
WITH env AS (SELECT ST_MakeEnvelope(:w, :s, :e, :n, 4326) AS g),
places AS (
    SELECT 'region:' || r.code AS id, r.name,
           CASE r.level WHEN 3 THEN 'county' WHEN 4 THEN 'township' ELSE 'village' END AS kind,
           r.level AS rank, NULL::real AS angle,
           coalesce(r.point, ST_PointOnSurface(r.geom)) AS pt,
           coalesce(ST_Area(r.geom), 0) AS size
    FROM regions r, env
    WHERE r.retired_at IS NULL AND r.level = ANY(:levels) AND (r.geom && env.g OR r.point && env.g)
    UNION ALL
    SELECT 'nv:' || v.id, v.name, 'natural_village', 6, NULL,
           ST_PointOnSurface(v.geom), ST_Area(v.geom)
    FROM natural_villages v, env
    WHERE :natural AND v.geom && env.g
),
road_parts AS (
    SELECT rd.name, (ST_Dump(ST_Intersection(rd.geom, env.g))).geom AS part
    FROM roads rd, env
    WHERE :roads AND rd.geom && env.g AND coalesce(btrim(rd.name), '') <> ''
),
roads AS (  -- one label per name in view: the middle of its longest piece, turned along it
    SELECT DISTINCT ON (name) name, part, ST_Length(part) AS len
    FROM road_parts WHERE GeometryType(part) = 'LINESTRING' AND ST_Length(part) > 0
    ORDER BY name, ST_Length(part) DESC
),
labels AS (
    SELECT * FROM places
    UNION ALL
    SELECT 'road:' || md5(name), name, 'road', 7,
           degrees(ST_Azimuth(ST_Transform(ST_LineInterpolatePoint(part, 0.4), 3857),
                              ST_Transform(ST_LineInterpolatePoint(part, 0.6), 3857)))::real,
           ST_LineInterpolatePoint(part, 0.5), len
    FROM roads
)
SELECT l.id, l.name, l.kind, l.angle, ST_AsGeoJSON(l.pt, 6) AS geojson
FROM labels l, env
WHERE l.pt IS NOT NULL AND ST_Intersects(l.pt, env.g)
ORDER BY l.rank, l.size DESC, l.id
LIMIT :limit
"""


def place_labels(
    conn: Connection,
    box: dict[str, float],
    levels: list[int],
    natural: bool,
    roads: bool,
    limit: int,
) -> list[dict[str, Any]]:
    """Labels in the box `{w, s, e, n}` (id, name, kind, angle as road azimuth, geojson point):
    regions of `levels`, natural villages and road names if asked, most important first."""
    params = {**box, "levels": levels, "natural": natural, "roads": roads, "limit": limit}
    return [dict(r) for r in conn.execute(text(_LABELS_SQL), params).mappings().all()]
