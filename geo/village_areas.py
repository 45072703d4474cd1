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


def _prefix_len(region: str) -> str:
    """How many leading digits of a region code name it (2 province ... 9 township)."""
    return (
        f"CASE WHEN substr({region}, 7, 3) <> '000' THEN 9 WHEN substr({region}, 5, 2) <> '00' "
        f"THEN 6 WHEN substr({region}, 3, 2) <> '00' THEN 4 ELSE 2 END"
    )


def area_village_sql(point: str, region: str) -> str:
    """SQL of the approximate village of a point located in `region` when that region is no
    village (a township or county): the village area piece covering it under that region."""
    n = _prefix_len(region)
    return f"""(SELECT a.village_code FROM village_area_parts a
      WHERE right({region}, 3) = '000' AND a.geom && {point} AND ST_Covers(a.geom, {point})
        AND left(a.village_code, {n}) = left({region}, {n})
      ORDER BY a.village_code LIMIT 1)"""


_AREA_VILLAGE_OF = f"""
SELECT {area_village_sql("p.g", "CAST(:region AS char(12))")}
FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) p
"""


def area_village_of(conn: Connection, lon: float, lat: float, region: str | None) -> str | None:
    """The approximate village of a WGS 84 point located in `region` (None: none, or the region
    is a village itself)."""
    if region is None or region[9:] != "000":
        return None
    return conn.execute(text(_AREA_VILLAGE_OF), {"lon": lon, "lat": lat, "region": region}).scalar()


_RELOCATE = f"""
UPDATE devices d SET area_village_code = x.code
FROM (SELECT id, {area_village_sql("position", "region_code")} AS code FROM devices
      WHERE left(region_code, 6) = ANY(:counties) AND position IS NOT NULL) x
WHERE x.id = d.id AND d.area_village_code IS DISTINCT FROM x.code
"""


def relocate(conn: Connection, counties: list[str]) -> int:
    """Re-find the approximate village of every device in these counties (6-digit codes)."""
    return conn.execute(text(_RELOCATE), {"counties": counties}).rowcount or 0


def rebuild(conn: Connection, counties: list[str]) -> int:
    """Rebuild the approximate areas of every village with a point in these counties (6-digit
    county codes or longer codes); villages with a polygon of their own still get one (the
    polygon wins where it exists), and the approximate village of each device there
    (devices.area_village_code). Returns how many areas were built."""
    counties = sorted({c[:6] for c in counties})
    if not counties:
        return 0
    conn.execute(
        text("DELETE FROM village_areas WHERE left(county_code, 6) = ANY(:c)"), {"c": counties}
    )
    result = conn.execute(text(_REBUILD), {"counties": counties, "radius": NO_BOUNDARY_RADIUS_M})
    relocate(conn, counties)
    return result.rowcount or 0
