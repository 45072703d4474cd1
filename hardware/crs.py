"""Chinese map coordinate systems: WGS 84 <-> GCJ-02 <-> BD-09 (pure functions, no database)."""

from __future__ import annotations

import math
from typing import Literal

from gridwatch.errors import DomainError

Crs = Literal["wgs84", "gcj02", "bd09"]
CRS_NAMES: tuple[str, ...] = ("wgs84", "gcj02", "bd09")

# GCJ-02 is WGS 84 plus an obfuscating offset computed on the Krasovsky 1940 ellipsoid; the
# forward formula below is the widely published one. Its inverse has no closed form, so it is
# solved by fixed-point iteration. BD-09 is a further rotation/scale of GCJ-02 used by Baidu.
_A = 6378245.0  # Krasovsky 1940 semi-major axis, metres
_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0
INVERSE_TOLERANCE_DEG = 1e-9  # iterate inverses well below the 1e-6° (~0.1 m) requirement
_MAX_ITERATIONS = 50


class CrsError(DomainError):
    """A coordinate or CRS name the conversions refuse (field lon, lat or crs)."""


def out_of_china(lon: float, lat: float) -> bool:
    """True outside the rough box where the GCJ-02 offset is applied (there it is the identity)."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _delta(lon: float, lat: float) -> tuple[float, float]:
    x, y = lon - 105.0, lat - 35.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (
        (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    rad_lat = math.radians(lat)
    magic = 1.0 - _EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return dlon, dlat


def _check(lon: float, lat: float) -> tuple[float, float]:
    lon, lat = float(lon), float(lat)
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise CrsError("lon", f"{lon!r} is not a longitude (allowed -180 to 180 degrees)")
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise CrsError("lat", f"{lat!r} is not a latitude (allowed -90 to 90 degrees)")
    return lon, lat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """WGS 84 -> GCJ-02 (identity outside China)."""
    lon, lat = _check(lon, lat)
    if out_of_china(lon, lat):
        return lon, lat
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 -> WGS 84 by iterating the forward transform (error far below 1e-6°)."""
    lon, lat = _check(lon, lat)
    if out_of_china(lon, lat):
        return lon, lat
    wlon, wlat = lon, lat
    for _ in range(_MAX_ITERATIONS):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        elon, elat = glon - lon, glat - lat
        wlon, wlat = wlon - elon, wlat - elat
        if abs(elon) < INVERSE_TOLERANCE_DEG and abs(elat) < INVERSE_TOLERANCE_DEG:
            break
    return wlon, wlat


def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02 -> BD-09."""
    lon, lat = _check(lon, lat)
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """BD-09 -> GCJ-02: the published closed-form inverse refined by iteration."""
    lon, lat = _check(lon, lat)
    x, y = lon - 0.0065, lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    glon, glat = z * math.cos(theta), z * math.sin(theta)
    for _ in range(_MAX_ITERATIONS):
        blon, blat = gcj02_to_bd09(glon, glat)
        elon, elat = blon - lon, blat - lat
        glon, glat = glon - elon, glat - elat
        if abs(elon) < INVERSE_TOLERANCE_DEG and abs(elat) < INVERSE_TOLERANCE_DEG:
            break
    return glon, glat


def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]:
    """WGS 84 -> BD-09 (via GCJ-02; inside China only the GCJ step applies its offset)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """BD-09 -> WGS 84 (via GCJ-02)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def check_crs(crs: str) -> Crs:
    """Normalise a CRS name (case-insensitive; "wgs84", "gcj02", "bd09"); ValueError otherwise."""
    name = str(crs).strip().lower().replace("-", "").replace("_", "")
    aliases = {"wgs84": "wgs84", "epsg4326": "wgs84", "gcj02": "gcj02", "bd09": "bd09"}
    if name not in aliases:
        raise CrsError("crs", f"{crs!r} is not supported (allowed: {', '.join(CRS_NAMES)})")
    return aliases[name]  # type: ignore[return-value]


def to_wgs84(lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    """Convert a point given in `crs` to WGS 84."""
    name = check_crs(crs)
    if name == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if name == "bd09":
        return bd09_to_wgs84(lon, lat)
    return _check(lon, lat)


def from_wgs84(lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    """Convert a WGS 84 point into `crs` (what a phone map would show)."""
    name = check_crs(crs)
    if name == "gcj02":
        return wgs84_to_gcj02(lon, lat)
    if name == "bd09":
        return wgs84_to_bd09(lon, lat)
    return _check(lon, lat)


def utm_srid(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone containing a point (326zz north, 327zz south), for
    metre computations chosen for the place rather than one hard-coded zone."""
    lon, lat = _check(lon, lat)
    zone = min(60, max(1, int((lon + 180.0) // 6.0) + 1))
    return (32600 if lat >= 0 else 32700) + zone
