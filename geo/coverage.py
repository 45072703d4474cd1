"""A registered camera's coverage shape: lens -> HFOV and range (hardware.optics) -> sector (hardware.sector)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from shapely.geometry.base import BaseGeometry

from hardware.optics import DORI_PPM, CameraOptics, OpticsError, optics, range_for_ppm
from hardware.sector import Preset, check_sector, ptz_coverage, sector

# What we assume when an installer leaves the lens out: the commonest Xueliang bullet camera
# (4 mm fixed lens, 1/2.8" sensor, 1080p) and, for a fisheye, a 1.4 mm lens. Every assumption
# is reported back so the installer can fill in the real value.
DEFAULT_FOCAL_MM = 4.0
DEFAULT_FISHEYE_FOCAL_MM = 1.4
DEFAULT_SENSOR = "1/2.8"
DEFAULT_RESOLUTION = (1920, 1080)
DEFAULT_DORI = "observe"


@dataclass
class Coverage:
    """HFOV (degrees), range (metres) at the DORI level, the FOV shape, and what was assumed."""

    hfov_deg: float | None
    range_m: float | None
    geometry: BaseGeometry | None
    assumptions: list[str] = field(default_factory=list)
    # (lon, lat, heading, half angle, radius), checked, while the geometry is still to draw
    pending: tuple[float, float, float, float, float] | None = None


@dataclass(frozen=True)
class LensInput:
    """The lens-related fields of a registration (all optional)."""

    heading_deg: float | None = None
    focal_mm: float | None = None
    focal_max_mm: float | None = None
    sensor_format: str | None = None
    resolution_w: int | None = None
    resolution_h: int | None = None
    hfov_deg: float | None = None
    ptz: bool = False
    presets: Sequence[tuple[float, float | None]] = ()  # (heading_deg, focal_mm or None)
    fisheye: bool = False


def camera_optics(lens: LensInput, assumptions: list[str]) -> CameraOptics:
    """The validated optics of a lens, filling gaps with the defaults (and saying so)."""
    focal = lens.focal_mm
    if focal is None:
        focal = DEFAULT_FISHEYE_FOCAL_MM if lens.fisheye else DEFAULT_FOCAL_MM
        if lens.hfov_deg is None:
            assumptions.append(f"focal_mm not given: assumed {focal:g} mm")
    focal_max = lens.focal_max_mm if lens.focal_max_mm is not None else focal
    sensor = lens.sensor_format
    if sensor is None:
        sensor = DEFAULT_SENSOR
        assumptions.append(f'sensor_format not given: assumed {DEFAULT_SENSOR}"')
    if lens.resolution_w is None or lens.resolution_h is None:
        resolution = DEFAULT_RESOLUTION
        assumptions.append("resolution not given: assumed 1920x1080")
    else:
        resolution = (lens.resolution_w, lens.resolution_h)
    return _optics(f"{focal:g}-{focal_max:g}", sensor, resolution)


@lru_cache(maxsize=1024)
def _optics(focal: str, sensor: str, resolution: tuple[int, int]) -> CameraOptics:
    # CameraOptics is frozen: an inventory of thousands of cameras has a handful of lenses
    return optics(focal, sensor, resolution)


def _equivalent_focal(cam: CameraOptics, hfov: float) -> float:
    """The focal length that gives `hfov` on this sensor (inverse of 2·atan(w/2f))."""
    return cam.sensor_width_mm / (2.0 * math.tan(math.radians(hfov) / 2.0))


@dataclass(frozen=True)
class _Shape:
    """A lens's coverage apart from where the camera stands: what to draw and how big."""

    hfov_deg: float
    range_m: float
    draw: str  # "sector" (needs a heading), "disc" or "ptz"
    presets: tuple[Preset, ...]
    assumptions: tuple[str, ...]


@lru_cache(maxsize=4096)
def _shape(key: tuple, level: str) -> _Shape:
    """Optics of a lens turned into a shape (cached by every lens field except the heading)."""
    fields = ("focal_mm", "focal_max_mm", "sensor_format", "resolution_w", "resolution_h")
    lens = LensInput(
        **dict(zip(fields, key[:5], strict=True)),
        hfov_deg=key[5],
        ptz=key[6],
        presets=key[7],
        fisheye=key[8],
    )
    if level not in DORI_PPM:
        raise OpticsError("dori level", level, ", ".join(DORI_PPM))
    assumptions: list[str] = []
    cam = camera_optics(lens, assumptions)
    if lens.fisheye or (lens.hfov_deg is not None and lens.hfov_deg >= 180.0):
        return _Shape(360.0, cam.dori_range_m(level), "disc", (), tuple(assumptions))
    if lens.ptz:
        if lens.presets:
            presets = tuple(
                Preset(
                    heading_deg=heading,
                    half_angle_deg=cam.hfov_deg(focal) / 2.0,
                    radius_m=cam.dori_range_m(level, focal),
                )
                for heading, focal in lens.presets
            )
            radius = max(p.radius_m for p in presets)
            return _Shape(cam.hfov_deg(), radius, "ptz", presets, tuple(assumptions))
        # no presets: a PTZ can pan all round; its reach is the range at the wide end
        assumptions.append("ptz without presets: coverage is the full circle at the wide end")
        return _Shape(360.0, cam.dori_range_m(level), "disc", (), tuple(assumptions))
    if lens.hfov_deg is not None:
        hfov = float(lens.hfov_deg)
        if lens.focal_mm is not None:
            radius = cam.dori_range_m(level)
        else:  # the range follows the focal length that gives this HFOV on this sensor
            focal = _equivalent_focal(cam, hfov)
            radius = range_for_ppm(DORI_PPM[level], focal, cam.sensor_width_mm, cam.width_px)
    else:
        hfov = cam.hfov_deg()
        radius = cam.dori_range_m(level)
    return _Shape(hfov, radius, "sector", (), tuple(assumptions))


def _lens_key(lens: LensInput) -> tuple:
    """Every lens field but the heading, as the cache key of `_shape`."""
    return (
        lens.focal_mm,
        lens.focal_max_mm,
        lens.sensor_format,
        lens.resolution_w,
        lens.resolution_h,
        lens.hfov_deg,
        lens.ptz,
        tuple(lens.presets),
        lens.fisheye,
    )


def coverage(
    lon: float, lat: float, lens: LensInput, level: str = DEFAULT_DORI, *, draw: bool = True
) -> Coverage:
    """Coverage of one camera at (lon, lat) WGS 84: sector, PTZ union of presets, or fisheye disc.

    With draw=False the inputs are checked and the shape is left for
    `geo.device_rows.fov_ewkb_many` to write for many cameras at once (Coverage.pending).
    Raises hardware OpticsError / SectorError (both ValueError naming the field) on bad input.
    """
    shape = _shape(_lens_key(lens), level)
    assumptions = list(shape.assumptions)
    if shape.draw == "ptz":
        geom = ptz_coverage(lon, lat, shape.presets)
        return Coverage(shape.hfov_deg, shape.range_m, geom, assumptions)
    if shape.draw == "disc":
        spec = check_sector(lon, lat, 0.0, 180.0, shape.range_m)
    elif lens.heading_deg is None:
        assumptions.append("heading_deg not given: no coverage sector drawn")
        return Coverage(shape.hfov_deg, shape.range_m, None, assumptions)
    else:
        spec = check_sector(lon, lat, lens.heading_deg, shape.hfov_deg / 2.0, shape.range_m)
    if not draw:
        return Coverage(shape.hfov_deg, shape.range_m, None, assumptions, pending=spec)
    return Coverage(shape.hfov_deg, shape.range_m, sector(*spec), assumptions)


def preset_sectors(lens: LensInput, level: str = DEFAULT_DORI) -> tuple[Preset, ...]:
    """A PTZ lens's presets as sectors (heading, half-angle and reach at the DORI level), in the
    order they were registered; () for a fixed lens or a PTZ without presets."""
    return _shape(_lens_key(lens), level).presets


def covering_preset(presets: Sequence[Preset], bearing_deg: float, distance_m: float) -> int | None:
    """Which preset (1 = the first registered) sees a spot at this bearing (degrees from north,
    from the camera) and distance: of those whose sector holds it, the one it lies most centrally
    in; None when no preset reaches it."""
    best: tuple[float, int] | None = None
    for number, p in enumerate(presets, start=1):
        off = abs((bearing_deg - p.heading_deg + 180.0) % 360.0 - 180.0)
        if off <= p.half_angle_deg and distance_m <= p.radius_m:
            score = off / p.half_angle_deg
            if best is None or score < best[0]:
                best = (score, number)
    return best[1] if best else None
