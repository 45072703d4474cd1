"""Coverage geometry: a camera's field of view as a geodesic sector polygon in WGS 84 (lon/lat)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict
from pyproj import Geod
from shapely import to_wkt as _shapely_to_wkt
from shapely import unary_union
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from hardware.optics import CameraOptics

GEOD = Geod(ellps="WGS84")
# The arc is drawn as chords of at most ARC_STEP_DEG. A chord of angle Δ lies at most
# r·(1 - cos(Δ/2)) inside the true arc (the sagitta) and loses 1 - sin(Δ)/Δ of the area:
# at 5° that is 0.095% of the radius (4.8 cm at 50 m) and 0.13% of the area: inside the stated
# bound of 0.1% of the radius (ARC_ERROR_BOUND, tested) and far inside the 1% area target. A 1° step (82 vertices per 80°
# sector, 0.004% of the radius) cost a bulk import 4x the drawing time for nothing visible.
ARC_ERROR_BOUND = 0.001  # largest distance of the drawn arc from the true one, per metre of radius
ARC_STEP_DEG = 5.0
MAX_RADIUS_M = 100_000.0
MAX_ABS_LAT = 89.0


class SectorError(ValueError):
    """Sector inputs outside their range, naming the field and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        super().__init__(f"{field}: {value!r} is not valid; allowed: {allowed}")


class Preset(BaseModel):
    """One PTZ preset: where it looks, how wide, how far."""

    model_config = ConfigDict(frozen=True)

    heading_deg: float
    half_angle_deg: float
    radius_m: float


def _finite(field: str, value: float, low: float, high: float, unit: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SectorError(field, value, f"a number {low:g}-{high:g} {unit}") from None
    if not (math.isfinite(v) and low <= v <= high):
        raise SectorError(field, value, f"{low:g}-{high:g} {unit}")
    return v


def _check_apex(lon: float, lat: float) -> tuple[float, float]:
    return (
        _finite("lon", lon, -180.0, 180.0, "degrees"),
        _finite("lat", lat, -MAX_ABS_LAT, MAX_ABS_LAT, "degrees"),
    )


def normalise_heading(heading_deg: float) -> float:
    """Heading in [0, 360): clockwise from true north; 370 -> 10, -90 -> 270."""
    try:
        h = float(heading_deg)
    except (TypeError, ValueError):
        raise SectorError("heading", heading_deg, "a finite number of degrees") from None
    if not math.isfinite(h):
        raise SectorError("heading", heading_deg, "a finite number of degrees")
    return h % 360.0


def _forward(lon: float, lat: float, azimuths: np.ndarray, radius_m: float) -> list[tuple]:
    n = len(azimuths)
    lons, lats, _ = GEOD.fwd(np.full(n, lon), np.full(n, lat), azimuths, np.full(n, radius_m))
    # keep longitudes continuous around the apex so a sector near ±180° stays one polygon
    lons = lon + ((np.asarray(lons) - lon + 180.0) % 360.0 - 180.0)
    return list(zip(lons.tolist(), np.asarray(lats).tolist(), strict=True))


def disc(lon: float, lat: float, radius_m: float) -> Polygon:
    """A 360° view (fisheye, or a PTZ sweeping all round): the geodesic circle about the point."""
    lon, lat = _check_apex(lon, lat)
    r = _finite("radius_m", radius_m, 1e-3, MAX_RADIUS_M, "metres")
    n = int(math.ceil(360.0 / ARC_STEP_DEG))
    azimuths = np.linspace(0.0, 360.0, n, endpoint=False)
    return orient(Polygon(_forward(lon, lat, azimuths, r)), 1.0)


def check_sector(
    lon: float, lat: float, heading_deg: float, half_angle_deg: float, radius_m: float
) -> tuple[float, float, float, float, float]:
    """The inputs of `sector` checked and normalised (heading in [0, 360)), or SectorError."""
    lon, lat = _check_apex(lon, lat)
    heading = normalise_heading(heading_deg)
    half = _finite("half_angle_deg", half_angle_deg, 1e-6, 180.0, "degrees")
    r = _finite("radius_m", radius_m, 1e-3, MAX_RADIUS_M, "metres")
    return lon, lat, heading, half, r


def sector(
    lon: float, lat: float, heading_deg: float, half_angle_deg: float, radius_m: float
) -> Polygon:
    """A sector: apex at the camera, centred on `heading_deg` (clockwise from north).

    `half_angle_deg` is half the horizontal FOV (0-180]; 180 gives the disc. Edges from the
    apex and along the arc are geodesics computed with pyproj.Geod on the WGS 84 ellipsoid;
    the arc has a vertex at least every ARC_STEP_DEG degrees. Exterior ring counter-clockwise.
    `sectors` draws the same polygons for many cameras at once.
    """
    lon, lat, heading, half, r = check_sector(lon, lat, heading_deg, half_angle_deg, radius_m)
    if half >= 180.0:
        return disc(lon, lat, r)
    n = max(2, int(math.ceil(2.0 * half / ARC_STEP_DEG)) + 1)
    azimuths = np.linspace(heading - half, heading + half, n)
    ring = [(lon, lat), *_forward(lon, lat, azimuths, r), (lon, lat)]
    return orient(Polygon(ring), 1.0)


def sectors(
    lon: np.ndarray,
    lat: np.ndarray,
    heading_deg: np.ndarray,
    half_angle_deg: np.ndarray,
    radius_m: np.ndarray,
) -> np.ndarray:
    """Many sectors at once: the same polygons as `sector` element by element, as an array.

    One pyproj.Geod call for every arc vertex of every camera, rings built and oriented by
    shapely's vectorised functions. Inputs are 1-d arrays of equal length; a half-angle of 180
    or more gives the disc. Raises SectorError naming the first bad field (index in the value).
    """
    xy, ring_n = _rings(lon, lat, heading_deg, half_angle_deg, radius_m)
    if not len(ring_n):
        return np.empty(0, dtype=object)
    rings = shapely.linearrings(xy, indices=np.repeat(np.arange(len(ring_n)), ring_n))
    return shapely.orient_polygons(shapely.polygons(rings), exterior_cw=False)


# The EWKB header of a polygon of one ring (little-endian, type 3 with the SRID flag), then
# its point count; of a point (type 1 with the SRID flag), then x and y.
_POLYGON_HEAD = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("rings", "<u4"), ("n", "<u4")]
)
_POINT = np.dtype([("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")])
_SRID_FLAG = 0x20000000
# A ring whose signed area is below this share of its extent squared is too thin to say its
# orientation by the shoelace sum: it goes through shapely's orient_polygons instead.
_THIN = 1e-6


def sectors_ewkb(
    lon: np.ndarray,
    lat: np.ndarray,
    heading_deg: np.ndarray,
    half_angle_deg: np.ndarray,
    radius_m: np.ndarray,
    srid: int = 4326,
) -> list[bytes]:
    """The EWKB (little-endian, with `srid`) of `sectors(...)`, byte for byte what shapely's
    to_wkb(include_srid=True) writes of them, without building a geometry per sector.

    The rings are oriented counter-clockwise as orient_polygons does: a ring is reversed when its
    shoelace area (taken about its first vertex) is negative; the rare ring too thin for the sign
    to be sure is drawn and oriented by shapely. Building, orienting, setting the SRID of and
    writing 10,000 polygons through shapely cost ~0.2 CPU-s, most of a bulk import's drawing."""
    xy, ring_n = _rings(lon, lat, heading_deg, half_angle_deg, radius_m)
    count = len(ring_n)
    if not count:
        return []
    start = np.cumsum(ring_n) - ring_n
    owner = np.repeat(np.arange(count), ring_n)
    rel = xy - xy[start][owner]
    nxt = np.roll(rel, -1, axis=0)  # the ring's next vertex (its last one is its first again)
    cross = rel[:, 0] * nxt[:, 1] - nxt[:, 0] * rel[:, 1]
    cross[start + ring_n - 1] = 0.0  # closing vertex -> the next ring's first: not an edge
    area2 = np.add.reduceat(cross, start)
    span = np.maximum.reduceat(np.abs(rel), start).max(axis=1)
    thin = np.abs(area2) <= _THIN * span * span
    # reversed rings: vertex k of ring i taken from its position n_i - 1 - k
    k = np.arange(len(owner)) - start[owner]
    flip = (area2 < 0)[owner]
    take = np.where(flip, start[owner] + ring_n[owner] - 1 - k, np.arange(len(owner)))
    coords = np.ascontiguousarray(xy[take]).tobytes()
    head = np.empty(count, dtype=_POLYGON_HEAD)
    head["order"], head["type"], head["srid"], head["rings"] = 1, 3 | _SRID_FLAG, srid, 1
    head["n"] = ring_n
    heads = head.tobytes()
    size = _POLYGON_HEAD.itemsize
    out = [
        heads[i * size : (i + 1) * size] + coords[16 * a : 16 * (a + n)]
        for i, (a, n) in enumerate(zip(start.tolist(), ring_n.tolist(), strict=True))
    ]
    for i in np.flatnonzero(thin).tolist():
        ring = shapely.linearrings(xy[start[i] : start[i] + ring_n[i]])
        poly = shapely.orient_polygons(shapely.polygons(ring), exterior_cw=False)
        out[i] = shapely.to_wkb(shapely.set_srid(poly, srid), include_srid=True, byte_order=1)
    return out


def points_ewkb(lon: np.ndarray, lat: np.ndarray, srid: int = 4326) -> list[bytes]:
    """The EWKB (little-endian, with `srid`) of many points, as shapely writes them."""
    pts = np.empty(len(lon), dtype=_POINT)
    pts["order"], pts["type"], pts["srid"] = 1, 1 | _SRID_FLAG, srid
    pts["x"], pts["y"] = lon, lat
    raw, size = pts.tobytes(), _POINT.itemsize
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def _rings(
    lon: np.ndarray,
    lat: np.ndarray,
    heading_deg: np.ndarray,
    half_angle_deg: np.ndarray,
    radius_m: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The rings of `sectors` as drawn (apex, arc clockwise, apex; a disc's arc closed on
    itself), before orientation: every vertex (n, 2) and each ring's vertex count."""
    arrays = [np.asarray(a, dtype=float) for a in (lon, lat, heading_deg, half_angle_deg, radius_m)]
    lon, lat, heading, half, r = arrays
    if len({a.shape for a in arrays}) != 1 or lon.ndim != 1:
        raise SectorError("sectors", [a.shape for a in arrays], "1-d arrays of equal length")
    count = len(lon)
    if count == 0:
        return np.empty((0, 2)), np.empty(0, dtype=np.int64)
    for field, values, low, high, unit in (
        ("lon", lon, -180.0, 180.0, "degrees"),
        ("lat", lat, -MAX_ABS_LAT, MAX_ABS_LAT, "degrees"),
        ("heading", heading, -np.inf, np.inf, "a finite number of degrees"),
        ("half_angle_deg", half, 1e-6, 180.0, "degrees"),
        ("radius_m", r, 1e-3, MAX_RADIUS_M, "metres"),
    ):
        bad = ~(np.isfinite(values) & (values >= low) & (values <= high))
        if bad.any():
            i = int(np.argmax(bad))
            allowed = unit if field == "heading" else f"{low:g}-{high:g} {unit}"
            raise SectorError(field, f"{values[i]!r} (item {i})", allowed)
    heading = heading % 360.0
    is_disc = half >= 180.0
    n_disc = int(math.ceil(360.0 / ARC_STEP_DEG))
    # arc vertices per sector exactly as `sector` counts them (ceil on the same float)
    arc_n = np.where(
        is_disc,
        n_disc,
        np.maximum(2, np.ceil(2.0 * half / ARC_STEP_DEG).astype(np.int64) + 1),
    ).astype(np.int64)
    # azimuths: linspace per sector, flattened (each sector's own formula, vectorised)
    owner = np.repeat(np.arange(count), arc_n)
    start = np.cumsum(arc_n) - arc_n
    k = np.arange(len(owner)) - start[owner]
    lo = np.where(is_disc, 0.0, heading - half)
    hi = np.where(is_disc, 360.0, heading + half)
    # np.linspace(a, b, n) is a + k*step with step = (b - a)/div, div = n - 1 (n for endpoint=False)
    div = np.where(is_disc, arc_n, arc_n - 1).astype(float)
    step = (hi - lo) / div
    az = lo[owner] + k * step[owner]
    last = ~is_disc[owner] & (k == arc_n[owner] - 1)
    az[last] = hi[owner][last]  # linspace puts the end point exactly
    lons, lats, _ = GEOD.fwd(lon[owner], lat[owner], az, r[owner])
    lons = lon[owner] + ((np.asarray(lons) - lon[owner] + 180.0) % 360.0 - 180.0)
    lats = np.asarray(lats)
    # rings: apex, arc, apex for a sector; the arc closed on itself for a disc
    ring_n = np.where(is_disc, arc_n + 1, arc_n + 2)
    ring_start = np.cumsum(ring_n) - ring_n
    xy = np.empty((int(ring_n.sum()), 2))
    arc_at = ring_start[owner] + k + np.where(is_disc, 0, 1)[owner]
    xy[arc_at, 0], xy[arc_at, 1] = lons, lats
    sec = np.flatnonzero(~is_disc)
    xy[ring_start[sec], 0], xy[ring_start[sec], 1] = lon[sec], lat[sec]
    end = ring_start + ring_n - 1
    xy[end[sec], 0], xy[end[sec], 1] = lon[sec], lat[sec]
    dsc = np.flatnonzero(is_disc)
    xy[end[dsc]] = xy[ring_start[dsc]]
    return xy, ring_n


def ptz_coverage(lon: float, lat: float, presets: Iterable[Preset]) -> Polygon | MultiPolygon:
    """What a PTZ camera covers: the union of its presets' sectors."""
    shapes = [sector(lon, lat, p.heading_deg, p.half_angle_deg, p.radius_m) for p in presets]
    if not shapes:
        raise SectorError("presets", [], "at least one preset")
    merged = unary_union(shapes)
    return orient(merged, 1.0) if isinstance(merged, Polygon) else merged


def camera_sector(
    lon: float,
    lat: float,
    heading_deg: float,
    camera: CameraOptics,
    level: str = "observe",
    focal_mm: float | None = None,
) -> Polygon:
    """The map sector of a camera: half-angle = HFOV/2, radius = its range at a DORI level."""
    return sector(
        lon,
        lat,
        heading_deg,
        camera.hfov_deg(focal_mm) / 2.0,
        camera.dori_range_m(level, focal_mm),
    )


def geodesic_area_m2(geometry: BaseGeometry) -> float:
    """Area on the WGS 84 ellipsoid, square metres (absolute)."""
    area, _ = GEOD.geometry_area_perimeter(geometry)
    return abs(area)


def analytic_sector_area_m2(half_angle_deg: float, radius_m: float) -> float:
    """Planar sector area r²·θ/2 with θ the full angle in radians."""
    return radius_m**2 * math.radians(2.0 * half_angle_deg) / 2.0


def to_wkt(geometry: BaseGeometry, precision: int = 7) -> str:
    """WKT with `precision` decimals (7 decimals of a degree ≈ 1 cm)."""
    return _shapely_to_wkt(geometry, rounding_precision=precision)
