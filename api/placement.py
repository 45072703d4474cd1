"""Where a device may stand: the id's division must contain the position, and the user's scope too."""

from __future__ import annotations

from sqlalchemy import Connection

from api.deps import Principal
from api.errors import ApiError, unprocessable
from api.scope import region_prefix
from geo.device_reads import device_standing
from geo.regions import region_name
from geo.registry import locate, to_wgs84_point


def id_division(device_id: str) -> str:
    """The 12-digit division a GB/T 28181 id belongs to (digits 1-6 padded; city-level ids keep 4)."""
    return device_id[:6].ljust(12, "0")


def _region_name(conn: Connection, code: str) -> str:
    name = region_name(conn, code)
    return f"{name} ({code})" if name else code


def check_position(
    conn: Connection, device_id: str, lon: float, lat: float, crs: str, user: Principal
) -> tuple[float, float, str, int | None]:
    """Convert to WGS 84 and locate; 422 when the position is outside the id's division,
    403 when outside the user's regions. Returns (lon, lat, region_code, grid_id) in WGS 84."""
    wlon, wlat = to_wgs84_point(lon, lat, crs)  # a refusal is a DomainError: 422 with its field
    region, grid = locate(conn, wlon, wlat)
    where = f"{wlon:.6f},{wlat:.6f} (WGS 84, from {crs})"
    if region is None:
        raise unprocessable(
            "lon",
            f"position {where} lies outside every loaded region; check the coordinates and their crs",
        )
    division = id_division(device_id)
    try:
        prefix = region_prefix(division)
    except ValueError:
        prefix = division[:6]
    if not region.startswith(prefix):
        raise unprocessable(
            "lon",
            f"position {where} lies in {_region_name(conn, region)}, outside "
            f"{_region_name(conn, division)} named by digits 1-6 of the id; "
            "check the coordinates, their crs (phones give gcj02) or the id",
        )
    user.require_region(region, "register or change devices")
    return wlon, wlat, region, grid


def device_region(conn: Connection, device_id: str) -> str | None:
    """The region a registered device stands in; 404 when the id is not registered."""
    row = device_standing(conn, device_id)
    if row is None:
        raise ApiError(404, f"device {device_id} is not registered")
    return row.region_code
