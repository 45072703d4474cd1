"""CRS safety: refuse coordinates whose CRS was not declared and that look GCJ-02-shifted against
the stored geometry, and declared CRSs whose coordinates are impossible."""

from __future__ import annotations

import random

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, text

from hardware.crs import gcj02_to_wgs84, to_wgs84

SAMPLE = 400  # points checked against the stored boundaries
MIN_SHIFT_M = 150.0  # a GCJ-02 offset in China is 100-700 m
MIN_POINTS = 20  # fewer points say too little to refuse a file


class CrsError(ValueError):
    """Coordinates that do not fit the CRS they were read in; the message says which --crs."""


def _gcj_to_wgs(geom: BaseGeometry) -> BaseGeometry:
    def fix(coords):
        return [gcj02_to_wgs84(x, y) for x, y in coords]

    return shapely.transform(geom, fix)


_INSIDE = """
SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM regions r WHERE r.level = 5 AND r.geom && p.g
                                       AND ST_Covers(r.geom, p.g))) AS given,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM regions r WHERE r.level = 5 AND r.geom && q.g
                                       AND ST_Covers(r.geom, q.g))) AS corrected,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM regions r WHERE r.geom && p.g)) AS near
FROM unnest(CAST(:x AS float8[]), CAST(:y AS float8[]), CAST(:cx AS float8[]), CAST(:cy AS float8[]))
     AS u(x, y, cx, cy)
CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(u.x, u.y), 4326) AS g) p
CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(u.cx, u.cy), 4326) AS g) q
"""


def check_points(
    conn: Connection, points: list[tuple[float, float]], crs: str, declared: bool
) -> None:
    """Points read as `crs`: when the CRS was not declared and clearly more of them fall inside
    the stored village boundaries after a GCJ-02 correction than as given, refuse; when it was
    declared and none lies near any stored region while regions have boundaries, refuse."""
    if len(points) < MIN_POINTS:
        return
    rng = random.Random(len(points))
    raw = rng.sample(points, min(SAMPLE, len(points)))
    sample = [to_wgs84(x, y, crs) for x, y in raw]
    fixed = [gcj02_to_wgs84(x, y) for x, y in raw]
    row = conn.execute(
        text(_INSIDE),
        {
            "x": [p[0] for p in sample],
            "y": [p[1] for p in sample],
            "cx": [p[0] for p in fixed],
            "cy": [p[1] for p in fixed],
        },
    ).one()
    n = len(sample)
    if (
        not declared
        and crs == "wgs84"
        and row.corrected >= 0.5 * n
        and row.corrected > 2 * row.given
    ):
        raise CrsError(
            f"the coordinates look like GCJ-02 (AMap/Tencent), not WGS 84: of {n} sampled points "
            f"{row.given} fall inside imported village boundaries as given and {row.corrected} "
            "after the GCJ-02 correction. Pass --crs gcj02 (or --crs wgs84 if they really are WGS 84)"
        )
    has_bounds = conn.execute(text("SELECT EXISTS (SELECT 1 FROM regions WHERE geom IS NOT NULL)"))
    if has_bounds.scalar() and row.near == 0:
        raise CrsError(
            f"none of {n} sampled points lies within the bounds of any imported region: "
            f"the coordinates do not fit {crs} (wrong --crs or swapped lon/lat?)"
        )


def check_region_shift(
    conn: Connection, items: list[tuple[str, BaseGeometry]], crs: str, declared: bool
) -> None:
    """Boundaries of regions already stored, read without a declared CRS: refuse when they sit
    a GCJ-02-like shift away from the stored geometry and the correction brings them home."""
    if declared or crs != "wgs84" or not items:
        return
    rows = conn.execute(
        text(
            "SELECT code, ST_X(c) AS x, ST_Y(c) AS y FROM (SELECT code, ST_Centroid(geom) AS c "
            "FROM regions WHERE code = ANY(:c) AND geom IS NOT NULL) s"
        ),
        {"c": [code for code, _ in items]},
    ).all()
    stored = {r.code: (r.x, r.y) for r in rows}
    votes = shifted = 0
    for code, geom in items:
        if code not in stored or geom.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        votes += 1
        sx, sy = stored[code]
        given = _metres(geom.centroid.x, geom.centroid.y, sx, sy)
        fixed = _gcj_to_wgs(geom).centroid
        corrected = _metres(fixed.x, fixed.y, sx, sy)
        if given > MIN_SHIFT_M and corrected < given / 3:
            shifted += 1
    if votes and shifted * 2 > votes:
        raise CrsError(
            f"{shifted} of {votes} boundaries sit a GCJ-02-like shift ({MIN_SHIFT_M:.0f} m or more) "
            "from the stored ones and line up after the GCJ-02 correction: the file is probably "
            "GCJ-02. Pass --crs gcj02 (or --crs wgs84 if it really is WGS 84)"
        )


def check_projected_degrees(raw: list[BaseGeometry], crs: str) -> None:
    """A projected CRS (metres) whose coordinates all look like degrees is refused."""
    from pyproj import CRS

    try:
        projected = CRS.from_user_input(crs).is_projected
    except Exception:  # gcj02/bd09 names and the like are geographic
        return
    if not projected or not raw:
        return
    coords = shapely.get_coordinates([g for g in raw if g is not None and not g.is_empty])
    if len(coords) and (abs(coords[:, 0]) <= 180).all() and (abs(coords[:, 1]) <= 90).all():
        raise CrsError(
            f"the file declares {crs} (metres) but every coordinate is within ±180/±90: they look "
            "like degrees. Pass --crs wgs84 (or gcj02/bd09) for longitude/latitude"
        )


def _metres(x0: float, y0: float, x1: float, y1: float) -> float:
    import math

    dx = (x1 - x0) * 111_320.0 * math.cos(math.radians((y0 + y1) / 2))
    dy = (y1 - y0) * 110_540.0
    return math.hypot(dx, dy)
