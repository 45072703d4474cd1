"""How simulated movers move: patrol cars along a road, livestock collars wandering by a railway."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from pyproj import Geod

from simulators.fleet_rng import Rng

GEOD = Geod(ellps="WGS84")
_M_PER_DEG_LAT = 111_320.0


class Polyline:
    """A route in lon/lat with cumulative geodesic lengths, sampled by distance along it."""

    __slots__ = ("lons", "lats", "cum", "length_m", "bearings")

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        if len(points) < 2:
            raise ValueError("route: needs at least two points")
        self.lons = [float(p[0]) for p in points]
        self.lats = [float(p[1]) for p in points]
        az, _, dist = GEOD.inv(self.lons[:-1], self.lats[:-1], self.lons[1:], self.lats[1:])
        self.bearings = [a % 360.0 for a in az]
        self.cum = [0.0]
        for d in dist:
            self.cum.append(self.cum[-1] + float(d))
        self.length_m = self.cum[-1]
        if self.length_m <= 0:
            raise ValueError("route: has zero length")

    def at(self, s: float) -> tuple[float, float, float]:
        """(lon, lat, bearing°) at distance s metres from the start (clamped to the route)."""
        s = min(max(s, 0.0), self.length_m)
        i = min(bisect.bisect_right(self.cum, s) - 1, len(self.cum) - 2)
        seg = self.cum[i + 1] - self.cum[i]
        f = (s - self.cum[i]) / seg if seg > 0 else 0.0
        lon = self.lons[i] + f * (self.lons[i + 1] - self.lons[i])
        lat = self.lats[i] + f * (self.lats[i + 1] - self.lats[i])
        return lon, lat, self.bearings[i]


def _shift(lon: float, lat: float, bearing_deg: float, metres: float) -> tuple[float, float]:
    b = math.radians(bearing_deg)
    east, north = metres * math.sin(b), metres * math.cos(b)
    return (
        lon + east / (_M_PER_DEG_LAT * math.cos(math.radians(lat))),
        lat + north / _M_PER_DEG_LAT,
    )


class PatrolMotion:
    """A patrol car driving its road back and forth at a steady speed (25-50 km/h by seed)."""

    __slots__ = ("route", "speed_mps", "offset_m")

    def __init__(self, route: Polyline, rng: Rng, key: int) -> None:
        self.route = route
        self.speed_mps = (25.0 + 25.0 * rng.uniform(key, 1)) / 3.6
        self.offset_m = rng.uniform(key, 2) * 2.0 * route.length_m

    def at(self, elapsed_s: float) -> tuple[float, float, float, float]:
        """(lon, lat, speed km/h, heading°) `elapsed_s` simulated seconds after the start."""
        length = self.route.length_m
        d = (self.offset_m + self.speed_mps * elapsed_s) % (2.0 * length)
        backwards = d > length
        lon, lat, bearing = self.route.at(2.0 * length - d if backwards else d)
        heading = (bearing + 180.0) % 360.0 if backwards else bearing
        return lon, lat, self.speed_mps * 3.6, heading


class GrazingMotion:
    """An animal near a railway: a home spot beside the line and a slow, smooth wander about it.

    The offset from the line swings with a period of hours and now and then crosses it (an
    animal on the track is what the railway geofence exists to catch).
    """

    __slots__ = ("route", "home_s", "side", "lateral_m", "terms")

    def __init__(self, route: Polyline, rng: Rng, key: int) -> None:
        self.route = route
        self.home_s = rng.uniform(key, 1) * route.length_m
        self.side = 1.0 if rng.uniform(key, 2) < 0.5 else -1.0
        self.lateral_m = 60.0 + 340.0 * rng.uniform(key, 3)
        # (along amplitude m, lateral amplitude m, angular frequency rad/s, phase)
        self.terms = [
            (
                80.0 + 250.0 * rng.uniform(key, 10 + k),
                self.lateral_m * (0.3 + 0.9 * rng.uniform(key, 20 + k)) / (k + 1),
                2 * math.pi / (3600.0 * (1.0 + 5.0 * rng.uniform(key, 30 + k))),
                2 * math.pi * rng.uniform(key, 40 + k),
            )
            for k in range(2)
        ]

    def _place(self, t: float) -> tuple[float, float, float]:
        along = self.home_s + sum(a * math.sin(w * t + p) for a, _, w, p in self.terms)
        lateral = self.lateral_m - sum(
            b * (1 + math.cos(w * t + p)) / 2 for _, b, w, p in self.terms
        )
        lon, lat, bearing = self.route.at(along)
        lon, lat = _shift(lon, lat, bearing + 90.0 * self.side, lateral)
        return lon, lat, lateral

    def at(self, elapsed_s: float) -> tuple[float, float, float, float]:
        """(lon, lat, speed km/h, heading°) `elapsed_s` simulated seconds after the start."""
        lon, lat, _ = self._place(elapsed_s)
        lon2, lat2, _ = self._place(elapsed_s + 10.0)
        az, _, dist = GEOD.inv(lon, lat, lon2, lat2)
        return lon, lat, float(dist) / 10.0 * 3.6, float(az) % 360.0

    def distance_to_line_m(self, elapsed_s: float) -> float:
        """Signed offset from the railway in metres (<= 0: on or across the track)."""
        return self._place(elapsed_s)[2]
