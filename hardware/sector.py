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
    arrays = [np.asarray(a, dtype=float) for a in (lon, lat, heading_deg, half_angle_deg, radius_m)]
    lon, lat, heading, half, r = arrays
    if len({a.shape for a in arrays}) != 1 or lon.ndim != 1:
        raise SectorError("sectors", [a.shape for a in arrays], "1-d arrays of equal length")
    count = len(lon)
    if count == 0:
        return np.empty(0, dtype=object)
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
    rings = shapely.linearrings(xy, indices=np.repeat(np.arange(count), ring_n))
    return shapely.orient_polygons(shapely.polygons(rings), exterior_cw=False)


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
