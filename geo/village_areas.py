"""Approximate village areas: Voronoi cells of the villages' official points, clipped to a boundary."""

from __future__ import annotations

from sqlalchemy import Connection, text

# Where no township or county boundary is on record, a cell is cut to this radius around its point.
NO_BOUNDARY_RADIUS_M = 3000.0

_REBUILD = """
WITH pts AS (
  SELECT v.code, v.point, left(v.code, 6) AS county FROM regions v
  WHERE v.level = 5 AND v.point IS NOT NULL AND v.retired_at IS NULL AND left(v.code, 6) = ANY(:counties)
), cells AS (
  SELECT county, CASE WHEN count(*) = 1 THEN ST_Expand(ST_Collect(point), 1.0)
    ELSE ST_VoronoiPolygons(ST_Collect(point), 0.0, ST_Expand(ST_Collect(point), 1.0)) END AS g
  FROM pts GROUP BY county
), cell AS (
  SELECT c.county, (ST_Dump(c.g)).geom AS cell FROM cells c
), own AS (
  SELECT DISTINCT ON (p.code) p.code, p.county, p.point, cell.cell
  FROM pts p JOIN cell ON cell.county = p.county AND ST_Intersects(cell.cell, p.point)
  ORDER BY p.code, ST_Area(cell.cell)
), clipped AS (
  SELECT o.code, o.county,
    CASE WHEN t.geom IS NOT NULL THEN 'township' WHEN c.geom IS NOT NULL THEN 'county'
         ELSE 'no boundary: within ' || CAST(:radius AS int) || ' m of the point' END AS clip,
    ST_Multi(ST_CollectionExtract(ST_Intersection(o.cell, coalesce(t.geom, c.geom,
      ST_Buffer(o.point::geography, :radius)::geometry)), 3)) AS geom
  FROM own o
  LEFT JOIN regions t ON t.code = rpad(left(o.code, 9), 12, '0') AND t.geom IS NOT NULL
  LEFT JOIN regions c ON c.code = rpad(o.county, 12, '0') AND c.geom IS NOT NULL
)
INSERT INTO village_areas (village_code, county_code, clip, geom)
SELECT code, rpad(county, 12, '0'), clip, geom FROM clipped WHERE NOT ST_IsEmpty(geom)
"""


def rebuild(conn: Connection, counties: list[str]) -> int:
    """Rebuild the approximate areas of every village with a point in these counties (6-digit
    county codes or longer codes); villages with a polygon of their own still get one (the
    polygon wins where it exists). Returns how many areas were built."""
    counties = sorted({c[:6] for c in counties})
    if not counties:
        return 0
    conn.execute(
        text("DELETE FROM village_areas WHERE left(county_code, 6) = ANY(:c)"), {"c": counties}
    )
    result = conn.execute(text(_REBUILD), {"counties": counties, "radius": NO_BOUNDARY_RADIUS_M})
    return result.rowcount or 0
