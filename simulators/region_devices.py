"""Synthetic cameras and access devices placed on a region plan (poles at intersections, key sites, villages)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from simulators.region_plan import Plan, Scale, _rng
from simulators.region_shapes import (
    bearing,
    offset,
    random_points,
)

# --- cameras -----------------------------------------------------------------------------------

_LENSES = ((2.8, 0.25), (4.0, 0.5), (6.0, 0.25))
_RES = (((1920, 1080), 0.83), ((2560, 1440), 0.12), ((1280, 720), 0.05))


def _choice(rng: np.random.Generator, options: tuple) -> Any:
    values, weights = zip(*options, strict=True)
    return values[int(rng.choice(len(values), p=np.array(weights) / sum(weights)))]


class _Ids:
    """Serials per (county, type, network) so every id is unique and valid."""

    def __init__(self) -> None:
        self.next: dict[tuple[str, int, int], int] = {}

    def new(self, region: str, type_code: int = 132, network: int = 0, industry: int = 0) -> str:
        unit = 0
        key = (region[:6], type_code, network)
        n = self.next.get(key, 0) + 1
        self.next[key] = n
        unit, serial = divmod(n - 1, 999_999)
        return f"{region[:6]}{unit:02d}{industry:02d}{type_code:03d}{network}{serial + 1:06d}"


def _camera(
    ids: _Ids,
    rng: np.random.Generator,
    region: str,
    name: str,
    lon: float,
    lat: float,
    heading: float,
    *,
    focal: float | None = None,
    resource_class: int = 1,
    type_code: int = 132,
    **extra: Any,
) -> dict:
    w, h = _choice(rng, _RES)
    return {
        "id": ids.new(region, type_code, network=0 if rng.random() < 0.9 else 6),
        "name": name,
        "lon": float(lon),
        "lat": float(lat),
        "heading_deg": float(heading % 360.0),
        "focal_mm": float(focal if focal is not None else _choice(rng, _LENSES)),
        "sensor_format": "1/2.8" if rng.random() < 0.8 else "1/3",
        "resolution_w": w,
        "resolution_h": h,
        "mount_height_m": float(round(rng.uniform(3.5, 8.0), 1)),
        "resource_class": resource_class,
        "networked": bool(rng.random() < 0.96),
        "gb_edition": 2022,
        "vendor": "海康威视" if rng.random() < 0.5 else "大华",
        **extra,
    }


def _pole_cameras(
    ids: _Ids,
    rng: np.random.Generator,
    region: str,
    label: str,
    tx: float,
    ty: float,
    n: int,
    dist: tuple[float, float] = (6, 12),
    within: BaseGeometry | None = None,
    angle: float | None = None,
    **kw: Any,
) -> list[dict]:
    """n cameras on one pole a few metres from a target, looking at it (within 2 m of each other).

    With `within`, the pole is placed inside that polygon (e.g. the county, for a border site).
    """
    for _ in range(24):
        d = float(rng.uniform(*dist))
        a = float(rng.uniform(0, 2 * math.pi)) if angle is None else angle
        px, py = offset(tx, ty, d * math.sin(a), d * math.cos(a))
        if within is None or within.buffer(-0.00003).contains(Point(px, py)):
            break
    out = []
    for k in range(n):
        cx, cy = offset(px, py, float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1)))
        head = bearing(cx, cy, tx, ty) + (0 if k == 0 else float(rng.uniform(-25, 25)))
        out.append(_camera(ids, rng, region, f"{label}{k + 1}", cx, cy, head, **kw))
    return out


def cameras(plan: Plan, seed: int, scale: Scale) -> Iterator[dict]:
    """The camera registrations for a plan (a generator: a province has a million)."""
    ids = _Ids()
    for v in plan.villages:
        rng = _rng(seed, 5, *v["rng_key"])
        code, name, profile = v["code"], v["name"], v["profile"]
        poles = 0
        # two monitoring points per natural village at its main intersections (one per
        # intersection, or both sides of the only one); "nv_gap" villages leave every other
        # natural village with one, "under" villages stop after two poles
        for n_i, ixl in enumerate(v["nv_ix"]):
            if profile == "under" and poles >= 2:
                break
            want = 1 if profile == "nv_gap" and n_i % 2 == 1 else 2
            a0 = float(rng.uniform(0, 2 * math.pi))
            for j in range(want):
                x, y = ixl[j] if len(ixl) > j else ixl[0]
                angle = a0 if len(ixl) > j else a0 + math.pi * j
                n = 1 + int(rng.random() < 0.45)
                yield from _pole_cameras(
                    ids,
                    rng,
                    code,
                    f"{name}路口{n_i + 1}-{j + 1}-",
                    x,
                    y,
                    n,
                    dist=(9, 12),
                    angle=angle,
                    focal=4.0 if rng.random() < 0.7 else 2.8,
                )
                poles += 1
        if v["community"]:
            target = (
                int(rng.integers(*scale.community_poles))
                if profile == "good"
                else int(rng.integers(1, 4))
            )
        else:
            target = (
                poles + int(rng.integers(*scale.extra_poles))
                if profile != "under"
                else min(4, poles + int(rng.integers(0, 2)))
            )
            target = max(target, 5) if profile == "good" else target
        extra = max(0, target - poles) if profile != "under" else max(0, target - poles)
        if extra:
            pts = random_points(v["cell"], extra, rng)
            for k, (x, y) in enumerate(pts):
                rc = 3 if v["community"] and rng.random() < 0.4 else 1
                fisheye = v["community"] and rng.random() < 0.05
                n = 1 if fisheye else 1 + int(rng.random() < 0.35)
                for cam in _pole_cameras(
                    ids,
                    rng,
                    code,
                    f"{name}{k + 1}号杆-",
                    x,
                    y,
                    n,
                    dist=(0.5, 1.5),
                    resource_class=rc,
                ):
                    if fisheye:
                        cam.update(fisheye=True, heading_deg=None, focal_mm=1.4)
                    yield cam
        # smart security communities: most communities have networked smart doors
        if v["community"] and rng.random() < 0.8:
            for k, (x, y) in enumerate(random_points(v["cell"], 1 + int(rng.random() < 0.5), rng)):
                yield {
                    "id": ids.new(code, 142),
                    "name": f"{name}智能门禁{k + 1}",
                    "lon": float(x),
                    "lat": float(y),
                    "gb_edition": 2022,
                    "resource_class": 3,
                    "networked": True,
                }
    # key sites: most are watched, some are left uncovered so the audit has findings
    for key, kname, kind, region, geom in plan.key_sites:
        rng = _rng(seed, 6, int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))
        if rng.random() < 0.15:
            continue
        c = geom.centroid
        region_code = region or key.split(":")[1]
        kw: dict[str, Any]  # the pole cameras' set-up by kind of site
        if geom.geom_type == "Polygon":
            presets = [{"heading_deg": h, "focal_mm": 4.8} for h in (0, 90, 180, 270)]
            cam = _camera(
                ids,
                rng,
                region_code,
                f"{kname}球机",
                c.x,
                c.y,
                0,
                focal=4.8,
                resource_class=2,
                ptz=True,
                focal_max_mm=120.0,
                presets=presets,
            )
            cam["heading_deg"] = None
            yield cam
            label, kw = kname, {"dist": (15, 20), "focal": 4.0, "resource_class": 2}
        elif kind == "city_exit":  # a checkpoint: plate cameras
            label, kw = f"{kname}卡口", {"dist": (8, 12), "focal": 8.0, "resource_class": 1}
            kw.update(type_code=121, within=plan.counties.get(region_code[:6]))
        else:
            label, kw = kname, {"dist": (8, 14), "focal": 4.0, "resource_class": 2}
            kw.update(within=plan.counties.get(region_code[:6]))
        yield from _pole_cameras(ids, rng, region_code, label, c.x, c.y, 2, **kw)
