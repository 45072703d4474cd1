"""The virtual fleet's inputs: FleetDevice records, run options, and synthetic fleets for benchmarks."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hardware.gbid import GbIdError, allocate_ids, parse_device_id
from hardware.kinds import KINDS, KindSpec, kind, kind_for_type
from simulators.fleet_rng import Rng

LonLat = tuple[float, float]
Stamp = Literal["wall", "sim"]

# Snapshot faults, named as vision.faults names them so the vision worker's verdicts can be
# checked against what was injected ("moved" is the scene_change fault).
SNAPSHOT_FAULTS: tuple[str, ...] = (
    "occlusion",
    "blur",
    "too_dark",
    "too_bright",
    "colour_cast",
    "snow_noise",
    "stripes",
    "frozen",
    "scene_change",
)


class FleetDevice(BaseModel):
    """One simulated device: its id, kind (and gridwatch sub-kind), where it is, how it behaves."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    sub_kind: str | None = None
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    heartbeat_s: float | None = Field(default=None, gt=0)
    route: tuple[LonLat, ...] | None = None  # road for a patrol car, railway for a collar
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"  # CRS its position reports use
    fault: str | None = None  # snapshot fault injected from the start (cameras only)

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        for edition in (2022, 2016):
            try:
                return parse_device_id(value, edition).code
            except (GbIdError, ValueError) as exc:
                reason = str(exc)
        raise ValueError(f"id: {reason}")

    @field_validator("fault")
    @classmethod
    def _valid_fault(cls, value: str | None) -> str | None:
        if value is not None and value not in SNAPSHOT_FAULTS:
            raise ValueError(f"fault: {value!r} is not one of {', '.join(SNAPSHOT_FAULTS)}")
        return value

    @model_validator(mode="after")
    def _valid_kind(self) -> FleetDevice:
        kind(self.kind)  # raises with the list of kinds
        if self.sub_kind is not None and self.sub_kind not in KINDS:
            raise ValueError(f"sub_kind: {self.sub_kind!r} is not one of {', '.join(KINDS)}")
        if self.route is not None and len(self.route) < 2:
            raise ValueError("route: needs at least two points")
        return self

    @property
    def spec(self) -> KindSpec:
        """The most specific catalogue entry: the sub-kind when given, else the kind."""
        return KINDS[self.sub_kind] if self.sub_kind else KINDS[self.kind]

    @property
    def heartbeat_interval_s(self) -> float:
        return float(self.heartbeat_s or self.spec.heartbeat_s)


class FleetOptions(BaseModel):
    """How a run behaves; every random choice is drawn from `seed`."""

    seed: int = 28181
    speed: float = Field(default=1.0, gt=0, le=100_000)
    duration_s: float | None = Field(default=None, gt=0)  # simulated seconds; None: until stopped
    start_at: float | None = None  # simulated epoch at start; None: now
    stamp: Stamp = "wall"  # payload ts: the wall clock (as devices would) or the simulated clock
    run_tag: str | None = None  # makes alarm msg_ids unique across runs; None: from the start time
    alarm_rate_scale: float = Field(default=1.0, ge=0)
    unreliable_fraction: float = Field(default=0.03, ge=0, le=1)  # cameras with outages
    flapping_fraction: float = Field(default=0.01, ge=0, le=1)  # devices that flap on/off
    outage_mean_s: float = Field(default=900.0, gt=0)
    snapshot_s: float = Field(default=600.0, gt=0)
    snapshot_fraction: float = Field(default=1.0, ge=0, le=1)  # cameras that send snapshots
    snapshot_size: tuple[int, int] = (320, 180)
    fault_fraction: float = Field(default=0.1, ge=0, le=1)  # cameras with an injected fault
    lag_tolerance_s: float = Field(default=1.0, gt=0)  # wall seconds late = behind schedule


# --- synthetic fleets --------------------------------------------------------------------------

# The mix of a county's public-security fleet: mostly cameras, then sensors and a few movers.
DEFAULT_MIX: dict[str, float] = {
    "ip_camera": 0.55,
    "camera": 0.10,
    "nvr": 0.02,
    "infrared_detector": 0.08,
    "door_sensor": 0.08,
    "smoke_detector": 0.08,
    "panic_button": 0.04,
    "patrol_car": 0.02,
    "livestock_collar": 0.03,
}

_M_PER_DEG_LAT = 111_320.0


def _offset(lon: float, lat: float, east_m: float, north_m: float) -> LonLat:
    return (
        lon + east_m / (_M_PER_DEG_LAT * math.cos(math.radians(lat))),
        lat + north_m / _M_PER_DEG_LAT,
    )


def synthetic_roads(centre: LonLat, radius_m: float, seed: int, n: int = 6) -> list[list[LonLat]]:
    """Wavy roads radiating from the centre out to `radius_m`, for patrol cars to drive."""
    rng = Rng(seed, 0xA0AD)
    roads = []
    for i in range(n):
        bearing = 2 * math.pi * (i + rng.uniform(i, 0) * 0.5) / n
        pts = []
        for k in range(11):
            d = radius_m * k / 10
            wobble = 0.08 * radius_m * math.sin(k * 0.9 + rng.uniform(i, 1) * 6.28)
            east = d * math.sin(bearing) + wobble * math.cos(bearing)
            north = d * math.cos(bearing) - wobble * math.sin(bearing)
            pts.append(_offset(*centre, east, north))
        roads.append(pts)
    return roads


def synthetic_railway(centre: LonLat, radius_m: float, seed: int) -> list[LonLat]:
    """A gently curving railway across the area, for livestock collars to wander beside."""
    rng = Rng(seed, 0x7A11)
    bearing = rng.uniform(0, 0) * math.pi
    pts = []
    for k in range(-10, 11):
        d = radius_m * k / 10
        bend = 0.05 * radius_m * math.sin(k / 3.0)
        pts.append(
            _offset(
                *centre,
                d * math.sin(bearing) + bend * math.cos(bearing),
                d * math.cos(bearing) - bend * math.sin(bearing),
            )
        )
    return pts


def synthesize_fleet(
    n: int,
    centre: LonLat = (115.9, 28.68),
    radius_m: float = 15_000.0,
    region: str = "360121",
    seed: int = 28181,
    mix: dict[str, float] | None = None,
    gcj02_fraction: float = 0.3,
) -> list[FleetDevice]:
    """N devices scattered around `centre` with valid, distinct IDs in `region` (for benchmarks).

    Patrol cars drive synthetic roads radiating from the centre, collars graze beside a synthetic
    railway; `gcj02_fraction` of those movers report GCJ-02 positions, as phone-based trackers do.
    """
    if n < 0:
        raise ValueError(f"n: {n} must be 0 or more")
    mix = mix or DEFAULT_MIX
    for name in mix:
        kind(name)
    total = sum(mix.values())
    names = list(mix)
    counts = [int(n * mix[k] / total) for k in names]
    counts[0] += n - sum(counts)
    roads = synthetic_roads(centre, radius_m, seed)
    railway = synthetic_railway(centre, radius_m, seed)
    rng = Rng(seed, 0xF1EE7)
    devices: list[FleetDevice] = []
    taken: set[str] = set()
    for name, count in zip(names, counts, strict=True):
        if count == 0:
            continue
        spec = kind(name)
        ids = allocate_ids(region, spec.type_code, count, taken)
        taken.update(d.code for d in ids)
        standard = kind_for_type(spec.type_code).name
        for d in ids:
            i = len(devices)
            r = radius_m * math.sqrt(rng.uniform(i, 0))
            a = 2 * math.pi * rng.uniform(i, 1)
            lon, lat = _offset(*centre, r * math.sin(a), r * math.cos(a))
            route: list[LonLat] | None = None
            crs = "wgs84"
            if name == "patrol_car":
                route = roads[i % len(roads)]
                lon, lat = route[0]
            elif name == "livestock_collar":
                route = railway
                lon, lat = railway[int(rng.uniform(i, 2) * len(railway)) % len(railway)]
            if route is not None and rng.uniform(i, 3) < gcj02_fraction:
                crs = "gcj02"
            devices.append(
                FleetDevice(
                    id=d.code,
                    kind=standard,
                    sub_kind=name if name != standard else None,
                    lon=lon,
                    lat=lat,
                    route=tuple(route) if route else None,
                    crs=crs,
                )
            )
    return devices
