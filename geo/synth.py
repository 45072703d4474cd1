"""Synthetic regions, deterministic by seed: a county near Nanchang (or a whole province) with everything audits need."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Engine, text

M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQ = 111_320.0


@dataclass(frozen=True)
class Scale:
    """How big a synthetic region is and how well it is equipped."""

    name: str
    cities: int = 1
    counties_per_city: tuple[int, int] = (1, 1)
    townships: tuple[int, int] = (14, 14)  # per county
    villages: tuple[int, int] = (16, 26)  # per township (real sample townships keep theirs)
    community_share: float = 0.25  # urban communities (居委会) among villages
    natural_villages: tuple[int, int] = (2, 6)  # per rural administrative village
    extra_poles: tuple[int, int] = (2, 6)  # poles beyond those at intersections, per good village
    community_poles: tuple[int, int] = (8, 16)
    county_radius_km: float = 24.0
    with_roads: bool = True
    presence_days: int = 7
    real_villages_max: int | None = None  # cap on the sample's real villages per township


SCALES: dict[str, Scale] = {
    "county": Scale(name="county"),
    # tests: one county, three townships of six villages
    "small": Scale(
        name="small",
        townships=(3, 3),
        villages=(6, 6),
        natural_villages=(2, 3),
        extra_poles=(2, 4),
        community_poles=(5, 7),
        county_radius_km=8.0,
        real_villages_max=6,
    ),
    # Jiangxi-sized: 11 cities x ~9 counties x ~15 townships x ~14.7 villages = ~22,000 villages,
    # ~150,000 natural villages, ~1,000,000 cameras
    "province": Scale(
        name="province",
        cities=11,
        counties_per_city=(8, 10),
        townships=(13, 17),
        villages=(12, 17),
        natural_villages=(6, 11),
        extra_poles=(16, 24),
        community_poles=(30, 44),
        county_radius_km=22.0,
        presence_days=7,
    ),
}


@lru_cache(maxsize=1)
def _names() -> dict:
    return json.loads((Path(__file__).parent / "data" / "nanchang_county.json").read_text("utf-8"))


# --- geometry helpers (degrees, with local metric offsets) -------------------------------------


def offset(lon: float, lat: float, dx_m: float, dy_m: float) -> tuple[float, float]:
    """Move a point by metres east/north (local tangent plane; fine for synthetic data)."""
    return lon + dx_m / (M_PER_DEG_LON_EQ * math.cos(math.radians(lat))), lat + dy_m / M_PER_DEG_LAT


def bearing(lon: float, lat: float, lon2: float, lat2: float) -> float:
    dx = (lon2 - lon) * M_PER_DEG_LON_EQ * math.cos(math.radians(lat))
    dy = (lat2 - lat) * M_PER_DEG_LAT
    return math.degrees(math.atan2(dx, dy)) % 360.0


def blob(
    lon: float,
    lat: float,
    radius_m: float,
    rng: np.random.Generator,
    n: int = 40,
    rough: float = 0.22,
) -> Polygon:
    """A noisy star-shaped polygon around a centre (a plausible county outline)."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    noise = np.convolve(rng.normal(0, rough, n + 4), np.ones(5) / 5, mode="valid")[:n]
    r = radius_m * (1 + noise)
    pts = [
        offset(lon, lat, ri * math.sin(a), ri * math.cos(a))
        for ri, a in zip(r, angles, strict=True)
    ]
    return shapely.make_valid(Polygon(pts)).buffer(0)


def random_points(poly: BaseGeometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniform random points inside a polygon (rejection sampling)."""
    x0, y0, x1, y1 = poly.bounds
    out: list[np.ndarray] = []
    got = 0
    shapely.prepare(poly)
    while got < n:
        k = max(16, 2 * (n - got))
        xs = rng.uniform(x0, x1, k)
        ys = rng.uniform(y0, y1, k)
        inside = shapely.contains_xy(poly, xs, ys)
        pts = np.column_stack([xs[inside], ys[inside]])
        out.append(pts)
        got += len(pts)
    return np.vstack(out)[:n]


def voronoi_split(
    poly: BaseGeometry, n: int, rng: np.random.Generator, lloyd: int = 2
) -> list[BaseGeometry]:
    """Split a polygon into n cells that tile it exactly (Voronoi of random seeds, Lloyd-relaxed)."""
    if n <= 1:
        return [poly]
    seeds = random_points(poly, n, rng)
    envelope = poly.envelope.buffer(
        max(poly.bounds[2] - poly.bounds[0], poly.bounds[3] - poly.bounds[1])
    )
    cells: list[BaseGeometry] = []
    for it in range(lloyd + 1):
        vor = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=envelope, ordered=True)
        cells = list(shapely.intersection(np.asarray(vor.geoms), poly))
        if it < lloyd:
            cents = np.array(
                [
                    c.centroid.coords[0] if not c.is_empty else s
                    for c, s in zip(cells, seeds, strict=True)
                ]
            )
            seeds = cents + rng.normal(0, 1e-7, cents.shape)
    return [
        c if not c.is_empty else Point(s).buffer(1e-6).intersection(poly)
        for c, s in zip(cells, seeds, strict=True)
    ]


def multi(geom: BaseGeometry) -> MultiPolygon:
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
    return MultiPolygon(polys)


def rect(lon: float, lat: float, w_m: float, h_m: float) -> Polygon:
    x0, y0 = offset(lon, lat, -w_m / 2, -h_m / 2)
    x1, y1 = offset(lon, lat, w_m / 2, h_m / 2)
    return box(x0, y0, x1, y1)


def mst_edges(points: np.ndarray) -> list[tuple[int, int]]:
    """Edges of a minimum spanning tree over points (Prim, O(n²); n is small per township)."""
    n = len(points)
    if n < 2:
        return []
    scale = np.array([math.cos(math.radians(float(points[:, 1].mean()))), 1.0])
    p = points * scale
    in_tree = np.zeros(n, bool)
    in_tree[0] = True
    dist = np.linalg.norm(p - p[0], axis=1)
    parent = np.zeros(n, int)
    edges = []
    for _ in range(n - 1):
        d = np.where(in_tree, np.inf, dist)
        j = int(np.argmin(d))
        edges.append((int(parent[j]), j))
        in_tree[j] = True
        nd = np.linalg.norm(p - p[j], axis=1)
        closer = nd < dist
        parent[closer] = j
        dist = np.minimum(dist, nd)
    return edges


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class Plan:
    """Everything generated, in WGS 84, before loading."""

    regions: list[tuple] = field(default_factory=list)  # code, level, name, parent, urc, geom|None
    grids: list[dict] = field(
        default_factory=list
    )  # code, name, level, parent_code, region, households, geom, workers
    natural_villages: list[tuple] = field(
        default_factory=list
    )  # local_code, name, village, households, geom
    intersections: list[tuple] = field(
        default_factory=list
    )  # key, nv_local_code, is_main, degree, geom
    roads: list[tuple] = field(default_factory=list)  # key, name, class, geom
    railways: list[tuple] = field(default_factory=list)
    key_sites: list[tuple] = field(default_factory=list)  # key, name, kind, region, geom
    villages: list[dict] = field(default_factory=list)  # per admin village info for the camera plan
    counties: dict[str, BaseGeometry] = field(default_factory=dict)  # 6-digit code -> outline


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _syllable_name(rng: np.random.Generator, suffixes: str | list[str]) -> str:
    names = _names()
    s = names["surnames"]
    suffix = suffixes[int(rng.integers(len(suffixes)))]
    return s[int(rng.integers(len(s)))] + suffix


def _county_list(
    seed: int, scale: Scale
) -> list[tuple[str, str, str, tuple[float, float], float, BaseGeometry | None]]:
    """(city code, county code, county name, centre, radius, outline or None) for the scale."""
    names = _names()
    if scale.cities == 1:
        lon, lat = names["county"]["center"]
        return [
            (
                names["city"]["code"],
                names["county"]["code"],
                names["county"]["name"],
                (lon, lat),
                scale.county_radius_km * 1000,
                None,
            )
        ]
    rng = _rng(seed, 1)
    province = blob(116.0, 27.3, 290_000, rng, n=64, rough=0.12)
    city_cells = voronoi_split(province, scale.cities, rng)
    out = []
    roots = names["county_roots"]
    for ci, (cc, _cname) in enumerate(names["cities"][: scale.cities]):
        cell = city_cells[ci]
        n = int(rng.integers(scale.counties_per_city[0], scale.counties_per_city[1] + 1))
        counties = voronoi_split(cell, n, rng)
        for k, poly in enumerate(counties):
            code = (
                f"36{cc}{(21 + k) if k < 9 else (2 + k - 9):02d}000000"
                if cc != "01" or k != 0
                else "360121000000"
            )
            name = (
                "南昌县"
                if code == "360121000000"
                else roots[int(rng.integers(len(roots)))]
                + roots[int(rng.integers(len(roots)))]
                + ("县" if k % 3 else "区")
            )
            c = poly.centroid
            out.append((f"36{cc}00000000", code, name, (c.x, c.y), 0.0, poly))
    return out


def build_plan(seed: int, scale: Scale) -> Plan:
    """Generate regions, grids, villages, roads and key sites (no cameras yet)."""
    names = _names()
    plan = Plan()
    plan.regions.append((names["province"]["code"], 1, names["province"]["name"], None, None, None))
    for cc, cname in names["cities"][: scale.cities]:
        plan.regions.append((f"36{cc}00000000", 2, cname, names["province"]["code"], None, None))
    for ci, (city, county, cname, (clon, clat), radius, outline) in enumerate(
        _county_list(seed, scale)
    ):
        _build_county(plan, seed, scale, ci, city, county, cname, clon, clat, radius, outline)
    return plan


def _build_county(
    plan: Plan,
    seed: int,
    scale: Scale,
    ci: int,
    city: str,
    county: str,
    cname: str,
    clon: float,
    clat: float,
    radius: float,
    outline: BaseGeometry | None,
) -> None:
    names = _names()
    rng = _rng(seed, 2, ci)
    poly = outline if outline is not None else blob(clon, clat, radius, rng)
    plan.regions.append((county, 3, cname, city, None, multi(poly)))
    plan.counties[county[:6]] = poly
    real = county == names["county"]["code"]
    n_towns = int(rng.integers(scale.townships[0], scale.townships[1] + 1))
    town_specs: list[tuple[str, str, list[dict]]] = []
    if real:
        for t in names["towns"]:
            vs = [v for v in names["villages"] if v["code"].startswith(t["code"][:9])]
            vs = vs[: scale.real_villages_max] if scale.real_villages_max else vs
            town_specs.append((t["code"], t["name"], vs))
    extra = names["extra_towns"]
    k_town, k_xiang = 2 if real else 0, 0
    while len(town_specs) < n_towns:
        i = len(town_specs)
        if real and i - 2 < len(extra):
            tname = extra[i - 2]
        else:
            tname = (
                _syllable_name(rng, "镇乡")
                if not real
                else f"{_syllable_name(rng, names['place_suffixes'])}镇"
            )
        if tname.endswith("乡"):
            tcode = f"{county[:6]}{200 + k_xiang:03d}000"
            k_xiang += 1
        else:
            tcode = f"{county[:6]}{100 + k_town:03d}000"
            k_town += 1
        town_specs.append((tcode, tname, []))
    town_cells = voronoi_split(poly, len(town_specs), rng)
    # main roads between township centres (secondary) and one primary road across the county
    centres = np.array([c.representative_point().coords[0] for c in town_cells])
    if scale.with_roads:
        for a, b in mst_edges(centres):
            plan.roads.append(
                (f"s:{county}:{a}-{b}", None, "secondary", LineString([centres[a], centres[b]]))
            )
        x0, y0, x1, y1 = poly.bounds
        across = LineString(
            [
                (x0 - 0.01, clat if outline is None else (y0 + y1) / 2),
                (x1 + 0.01, (y0 + y1) / 2 + (y1 - y0) * 0.1),
            ]
        )
        main = across.intersection(poly)
        if not main.is_empty:
            plan.roads.append(
                (
                    f"p:{county}",
                    f"{cname}大道",
                    "primary",
                    shapely.line_merge(main) if main.geom_type == "MultiLineString" else main,
                )
            )
            for end in (across.coords[0], across.coords[-1]):
                exit_pt = (
                    poly.exterior.interpolate(poly.exterior.project(Point(end)))
                    if poly.geom_type == "Polygon"
                    else poly.boundary.interpolate(poly.boundary.project(Point(end)))
                )
                plan.key_sites.append(
                    (
                        f"exit:{county}:{int(end[0] * 1000)}",
                        f"{cname}出城口",
                        "city_exit",
                        None,
                        Point(exit_pt.x, exit_pt.y),
                    )
                )
        if ci % 3 == 0:
            rail = LineString(
                [(x0, y0 + (y1 - y0) * 0.2), (x1, y0 + (y1 - y0) * 0.8)]
            ).intersection(poly)
            if not rail.is_empty:
                plan.railways.append((f"rail:{county}", "京九铁路" if real else "铁路", rail))
                mid = rail.interpolate(0.5, normalized=True)
                plan.key_sites.append(
                    (
                        f"station:{county}",
                        f"{cname}火车站",
                        "station",
                        None,
                        rect(mid.x, mid.y, 50, 30),
                    )
                )
    for ti, ((tcode, tname, real_villages), tcell) in enumerate(
        zip(town_specs, town_cells, strict=True)
    ):
        _build_township(plan, seed, scale, ci, ti, county, tcode, tname, real_villages, tcell)
    # county-level key sites: a checkpoint on the border and a dock
    border = poly.exterior if poly.geom_type == "Polygon" else poly.boundary
    cp = border.interpolate(float(rng.uniform(0, 1)), normalized=True)
    plan.key_sites.append(
        (f"checkpoint:{county}", f"{cname}公安检查站", "checkpoint", None, Point(cp.x, cp.y))
    )
    dk = border.interpolate(float(rng.uniform(0, 1)), normalized=True)
    inward = offset(dk.x, dk.y, *(np.sign([clon - dk.x, clat - dk.y]) * 150))
    plan.key_sites.append((f"dock:{county}", f"{cname}码头", "dock", None, Point(inward)))


def _village_names(
    rng: np.random.Generator, n: int, communities: int
) -> list[tuple[str, int, str]]:
    names = _names()
    out, used = [], set()
    k_c, k_v = 1, 200
    for i in range(n):
        is_comm = i < communities
        while True:
            base = _syllable_name(rng, names["place_suffixes"])
            if base not in used:
                used.add(base)
                break
        if is_comm:
            out.append((f"{k_c:03d}", 121 if rng.random() < 0.8 else 122, f"{base}社区居委会"))
            k_c += 1
        else:
            out.append((f"{k_v:03d}", 220 if rng.random() < 0.8 else 122, f"{base}村委会"))
            k_v += 1
    return out


def _build_township(
    plan: Plan,
    seed: int,
    scale: Scale,
    ci: int,
    ti: int,
    county: str,
    tcode: str,
    tname: str,
    real_villages: list[dict],
    tcell: BaseGeometry,
) -> None:
    rng = _rng(seed, 3, ci, ti)
    plan.regions.append((tcode, 4, tname, county, None, multi(tcell)))
    if real_villages:
        specs = [(v["code"][9:], v["urban_rural_code"], v["name"]) for v in real_villages]
    else:
        n = int(rng.integers(scale.villages[0], scale.villages[1] + 1))
        specs = _village_names(rng, n, max(1, int(round(n * scale.community_share))))
    # communities cluster around the township centre: put their seeds first, near the centre
    cells = voronoi_split(tcell, len(specs), rng)
    centre = tcell.representative_point()
    order = sorted(range(len(cells)), key=lambda i: cells[i].centroid.distance(centre))
    comm_idx = [i for i, s in enumerate(specs) if s[2].endswith(("居委会", "社区"))]
    rural_idx = [i for i in range(len(specs)) if i not in comm_idx]
    assignment = dict(zip(comm_idx + rural_idx, order, strict=True))
    street_code = f"{tcode}-S"
    plan.grids.append(
        {
            "code": street_code,
            "name": f"{tname}网格",
            "level": 1,
            "parent": None,
            "region": tcode,
            "households": None,
            "geom": multi(tcell),
            "workers": 2,
        }
    )
    if scale.with_roads:
        sq = centre
        plan.key_sites.append(
            (f"square:{tcode}", f"{tname}广场", "square", tcode, rect(sq.x, sq.y, 60, 40))
        )
        for kind, label, w, h in (("school", "中心小学", 40, 30), ("market", "农贸市场", 40, 30)):
            p = random_points(
                tcell.buffer(-0.001) if not tcell.buffer(-0.001).is_empty else tcell, 1, rng
            )[0]
            plan.key_sites.append(
                (f"{kind}:{tcode}", f"{tname}{label}", kind, tcode, rect(p[0], p[1], w, h))
            )
    hub_points = [np.array(centre.coords[0])]
    for i, (vcode3, urc, vname) in enumerate(specs):
        cell = cells[assignment[i]]
        vcode = f"{tcode[:9]}{vcode3}"
        is_comm = i in comm_idx
        _build_village(
            plan, seed, scale, ci, ti, i, vcode, vname, urc, is_comm, cell, street_code, hub_points
        )
    if scale.with_roads:
        pts = np.vstack(hub_points)
        for a, b in mst_edges(pts):
            plan.roads.append(
                (
                    f"v:{tcode}:{a}-{b}",
                    None,
                    "residential" if a == 0 or b == 0 else "track",
                    LineString([pts[a], pts[b]]),
                )
            )


def _build_village(
    plan: Plan,
    seed: int,
    scale: Scale,
    ci: int,
    ti: int,
    vi: int,
    vcode: str,
    vname: str,
    urc: int,
    is_comm: bool,
    cell: BaseGeometry,
    street_code: str,
    hub_points: list,
) -> None:
    names = _names()
    rng = _rng(seed, 4, ci, ti, vi)
    plan.regions.append((vcode, 5, vname, vcode[:9] + "000", urc, multi(cell)))
    households = int(rng.integers(800, 3000)) if is_comm else int(rng.integers(250, 1500))
    # grid faults are deliberate so the audit has findings: a gap, an overlap, no worker, too many households
    fault = rng.choice(
        ["none", "gap", "overlap", "no_worker", "crowded"], p=[0.9, 0.025, 0.025, 0.025, 0.025]
    )
    comm_code = f"{vcode}-C"
    plan.grids.append(
        {
            "code": comm_code,
            "name": f"{vname}网格",
            "level": 2,
            "parent": street_code,
            "region": vcode,
            "households": households,
            "geom": multi(cell),
            "workers": 1,
        }
    )
    n_base = max(1, int(round(households / 300)))
    base_cells = voronoi_split(cell, n_base, rng, lloyd=1)
    shares = rng.uniform(0.8, 1.2, len(base_cells))
    hh = np.maximum(0, np.round(households * shares / shares.sum())).astype(int)
    for b, (bc, h) in enumerate(zip(base_cells, hh, strict=True)):
        if fault == "gap" and b == 0 and n_base > 1:
            continue
        geom = bc
        if fault == "overlap" and b == 0 and n_base > 1:
            geom = bc.buffer(0.0004).intersection(cell)
        workers = 0 if fault == "no_worker" and b == 0 else 1 + int(rng.random() < 0.3)
        if fault == "crowded" and b == 0:
            h = int(rng.integers(650, 950))
        plan.grids.append(
            {
                "code": f"{vcode}-B{b + 1:02d}",
                "name": f"{vname}第{b + 1}网格",
                "level": 3,
                "parent": comm_code,
                "region": vcode,
                "households": int(h),
                "geom": multi(geom),
                "workers": workers,
            }
        )
    # natural villages with their main intersections
    info = {
        "code": vcode,
        "name": vname,
        "community": is_comm,
        "cell": cell,
        "nv_ix": [],
        "rng_key": (ci, ti, vi),
    }
    if not is_comm:
        n_nv = int(rng.integers(scale.natural_villages[0], scale.natural_villages[1] + 1))
        inner = cell.buffer(-0.002)
        area = inner if not inner.is_empty and inner.area > cell.area * 0.2 else cell
        pts = random_points(area, n_nv, rng)
        for k, (x, y) in enumerate(pts):
            local = f"{vcode}-N{k + 1:02d}"
            nv_name = _syllable_name(rng, names["hamlet_suffixes"])
            plan.natural_villages.append(
                (local, nv_name, vcode, int(rng.integers(30, 160)), Point(x, y))
            )
            hub_points.append(np.array([x, y]))
            ix = [(x, y)]
            if rng.random() < 0.6:
                d, a = float(rng.uniform(80, 200)), float(rng.uniform(0, 2 * math.pi))
                ix.append(offset(x, y, d * math.sin(a), d * math.cos(a)))
            for j, (ixx, ixy) in enumerate(ix):
                plan.intersections.append(
                    (f"{local}-X{j + 1}", local, True, 3 if j == 0 else 2, Point(ixx, ixy))
                )
            info["nv_ix"].append(ix)
    else:
        hub_points.append(np.array(cell.representative_point().coords[0]))
    info["profile"] = str(
        rng.choice(["good", "under", "nv_gap"], p=[0.8, 0.1, 0.1])
        if not is_comm
        else rng.choice(["good", "under"], p=[0.92, 0.08])
    )
    plan.villages.append(info)


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
            yield from _pole_cameras(
                ids,
                rng,
                region_code,
                f"{kname}",
                c.x,
                c.y,
                2,
                dist=(15, 20),
                focal=4.0,
                resource_class=2,
            )
        elif kind == "city_exit":
            yield from _pole_cameras(
                ids,
                rng,
                region_code,
                f"{kname}卡口",
                c.x,
                c.y,
                2,
                dist=(8, 12),
                focal=8.0,
                resource_class=1,
                type_code=121,
                within=plan.counties.get(region_code[:6]),
            )
        else:
            yield from _pole_cameras(
                ids,
                rng,
                region_code,
                f"{kname}",
                c.x,
                c.y,
                2,
                dist=(8, 14),
                focal=4.0,
                resource_class=2,
                within=plan.counties.get(region_code[:6]),
            )


# --- loading -----------------------------------------------------------------------------------


def _copy(conn: Connection, sql: str, rows: Iterator[tuple] | list[tuple]) -> None:
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def _hex(geom: BaseGeometry | None) -> str | None:
    return None if geom is None else shapely.to_wkb(geom, hex=True, include_srid=False)


def _has(conn: Connection, table: str) -> bool:
    return conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar_one()


def load_plan(conn: Connection, plan: Plan) -> dict[str, int]:
    """Write a plan's regions, grids, workers, villages, intersections, roads and key sites."""
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_regions (code text, level smallint, name text, parent text, urc smallint, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_regions FROM STDIN",
        ((c, lv, n, p, u, _hex(g)) for c, lv, n, p, u, g in plan.regions),
    )
    conn.execute(
        text(
            "INSERT INTO regions (code, level, name, parent_code, urban_rural_code, geom) "
            "SELECT code, level, name, parent, urc, ST_SetSRID(geom, 4326) FROM _syn_regions ORDER BY level "
            "ON CONFLICT (code) DO UPDATE SET geom = coalesce(EXCLUDED.geom, regions.geom), "
            "urban_rural_code = coalesce(regions.urban_rural_code, EXCLUDED.urban_rural_code), updated_at = now()"
        )
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_grids (code text, name text, level smallint, parent text, region text, households integer, workers integer, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_grids FROM STDIN",
        (
            (
                g["code"],
                g["name"],
                g["level"],
                g["parent"],
                g["region"],
                g["households"],
                g["workers"],
                _hex(g["geom"]),
            )
            for g in plan.grids
        ),
    )
    for level in (1, 2, 3):
        conn.execute(
            text(
                "INSERT INTO grids (code, name, level, parent_id, region_code, households, geom) "
                "SELECT s.code, s.name, s.level, p.id, s.region, s.households, ST_SetSRID(s.geom, 4326) "
                "FROM _syn_grids s LEFT JOIN grids p ON p.code = s.parent WHERE s.level = :l "
                "ON CONFLICT (code) DO NOTHING"
            ),
            {"l": level},
        )
    conn.execute(
        text(
            "INSERT INTO grid_workers (grid_id, name) SELECT g.id, '网格员' || n FROM _syn_grids s "
            "JOIN grids g ON g.code = s.code CROSS JOIN LATERAL generate_series(1, s.workers) n "
            "WHERE NOT EXISTS (SELECT 1 FROM grid_workers w WHERE w.grid_id = g.id)"
        )
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_nv (local_code text, name text, village text, households integer, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_nv FROM STDIN",
        ((a, b, c, d, _hex(g)) for a, b, c, d, g in plan.natural_villages),
    )
    conn.execute(
        text(
            "INSERT INTO natural_villages (local_code, name, village_code, households, geom, source) "
            "SELECT local_code, name, village, households, ST_SetSRID(geom, 4326), 'synthetic' FROM _syn_nv "
            "ON CONFLICT (local_code) DO NOTHING"
        )
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_ix (key text, nv text, main boolean, degree smallint, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_ix FROM STDIN",
        ((a, b, c, d, _hex(g)) for a, b, c, d, g in plan.intersections),
    )
    conn.execute(
        text(
            "INSERT INTO intersections (source_key, natural_village_id, is_main, degree, geom) "
            "SELECT s.key, n.id, s.main, s.degree, ST_SetSRID(s.geom, 4326) FROM _syn_ix s "
            "JOIN natural_villages n ON n.local_code = s.nv ON CONFLICT (source_key) DO NOTHING"
        )
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_lines (tbl text, key text, name text, class text, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_lines FROM STDIN",
        [
            *(("roads", k, n, c, _hex(g)) for k, n, c, g in plan.roads),
            *(("railways", k, n, None, _hex(g)) for k, n, g in plan.railways),
        ],
    )
    conn.execute(
        text(
            "INSERT INTO roads (source_key, name, class, geom) SELECT key, name, class, ST_Multi(ST_SetSRID(geom, 4326)) "
            "FROM _syn_lines WHERE tbl = 'roads' ON CONFLICT (source_key) DO NOTHING"
        )
    )
    conn.execute(
        text(
            "INSERT INTO railways (source_key, name, geom) SELECT key, name, ST_Multi(ST_SetSRID(geom, 4326)) "
            "FROM _syn_lines WHERE tbl = 'railways' ON CONFLICT (source_key) DO NOTHING"
        )
    )
    conn.execute(
        text(
            "CREATE TEMP TABLE _syn_sites (key text, name text, kind text, region text, geom geometry) ON COMMIT DROP"
        )
    )
    _copy(
        conn,
        "COPY _syn_sites FROM STDIN",
        ((a, b, c, d, _hex(g)) for a, b, c, d, g in plan.key_sites),
    )
    conn.execute(
        text(
            "INSERT INTO key_sites (source_key, name, kind, region_code, geom) "
            "SELECT s.key, s.name, s.kind, coalesce(( SELECT r.code FROM regions r WHERE r.level = 5 AND r.geom && g.g "
            "  AND ST_Covers(r.geom, g.g) LIMIT 1), s.region), g.g FROM _syn_sites s "
            "CROSS JOIN LATERAL (SELECT ST_SetSRID(s.geom, 4326) AS g) g ON CONFLICT (source_key) DO NOTHING"
        )
    )
    return {
        "regions": len(plan.regions),
        "townships": sum(1 for r in plan.regions if r[1] == 4),
        "villages": sum(1 for r in plan.regions if r[1] == 5),
        "natural_villages": len(plan.natural_villages),
        "intersections": len(plan.intersections),
        "grids": len(plan.grids),
        "roads": len(plan.roads),
        "railways": len(plan.railways),
        "key_sites": len(plan.key_sites),
    }


def simulate_status(conn: Connection, seed: int, days: int = 7) -> dict[str, int]:
    """Give the generated devices a status, presence history and quality results (when those tables exist).

    About 93% are online now; some of those had an outage during the period; the others went
    offline 1-3 days ago. About 3% of cameras have a video-quality fault.
    """
    h = f"('x' || substr(md5(d.id || '-{int(seed)}'), 1, 8))::bit(32)::int"
    conn.execute(
        text(
            f"UPDATE devices d SET status = CASE WHEN NOT d.networked THEN 'unknown' "
            f"WHEN abs({h}) % 100 < 93 THEN 'online' ELSE 'offline' END, "
            f"last_seen = CASE WHEN NOT d.networked THEN NULL WHEN abs({h}) % 100 < 93 THEN now() - interval '20 seconds' "
            f"ELSE now() - interval '1 day' - (abs({h}) % 48) * interval '1 hour' END, "
            f"registered_at = now() - (30 + abs({h}) % 1500) * interval '1 day' "
            "WHERE d.registered_by = 'synth' AND d.status = 'unknown'"
        )
    )
    out = {"presence_intervals": 0, "health_rows": 0}
    if _has(conn, "device_presence"):
        start = f"now() - interval '{int(days)} days'"
        out["presence_intervals"] = conn.execute(
            text(
                "INSERT INTO device_presence (device_id, started_at, ended_at, end_reason) "
                f"SELECT d.id, {start}, CASE WHEN d.status = 'online' AND abs({h}) % 7 <> 0 THEN NULL ELSE "
                f"  CASE WHEN d.status = 'online' THEN {start} + interval '2 days' ELSE d.last_seen END END, "
                f"  CASE WHEN d.status = 'online' AND abs({h}) % 7 <> 0 THEN NULL ELSE 'missed_heartbeats' END "
                "FROM devices d WHERE d.registered_by = 'synth' "
                "AND NOT EXISTS (SELECT 1 FROM device_presence p WHERE p.device_id = d.id)"
            )
        ).rowcount
        out["presence_intervals"] += conn.execute(
            text(
                "INSERT INTO device_presence (device_id, started_at) "
                f"SELECT d.id, {start} + interval '2 days' + (abs({h}) % 10) * interval '1 hour' FROM devices d "
                "WHERE d.registered_by = 'synth' AND d.status = 'online' "
                "AND NOT EXISTS (SELECT 1 FROM device_presence p WHERE p.device_id = d.id AND p.ended_at IS NULL)"
            )
        ).rowcount
    if _has(conn, "camera_health"):
        out["health_rows"] = conn.execute(
            text(
                "INSERT INTO camera_health (device_id, ts, intact, faults) "
                f"SELECT d.id, now() - interval '1 hour', abs({h}) % 100 >= 3, "
                f"CASE WHEN abs({h}) % 100 < 3 THEN jsonb_build_array((ARRAY['blur','occlusion','too_dark','frozen'])[1 + abs({h}) % 4]) "
                "ELSE '[]'::jsonb END FROM devices d WHERE d.registered_by = 'synth' AND d.fov IS NOT NULL AND d.networked "
                "ON CONFLICT (device_id, ts) DO NOTHING"
            )
        ).rowcount
    return out


def _marker(seed: int, scale: str) -> tuple[str, str]:
    label = f"synthetic seed={seed} scale={scale}"
    return label, hashlib.sha256(label.encode()).hexdigest()


def generate_into(
    conn: Connection, seed: int, scale: str | Scale = "county", progress: Any = None
) -> dict:
    """Generate and load a synthetic region into the database behind `conn` (one transaction)."""
    spec = SCALES[scale] if isinstance(scale, str) else scale
    label, digest = _marker(seed, spec.name)
    row = conn.execute(
        text(
            "SELECT report FROM import_files WHERE kind = 'synthetic' AND sha256 = :h ORDER BY id DESC LIMIT 1"
        ),
        {"h": digest},
    ).first()
    if row is not None:
        return {**row.report, "created": False}
    t0 = time.perf_counter()
    plan = build_plan(seed, spec)
    t_plan = time.perf_counter() - t0
    counts = load_plan(conn, plan)
    from geo.bulk import register_many

    reg = register_many(
        conn,
        cameras(plan, seed, spec),
        "synth",
        reload_broker=False,
        refresh_compliance=False,
        batch=50_000,
    )
    status = simulate_status(conn, seed, spec.presence_days)
    from geo.live import refresh_all

    t_live = time.perf_counter()
    live = refresh_all(conn)
    status["live_cache_seconds"] = round(time.perf_counter() - t_live, 2)
    status["live_cache_villages"] = live["villages"]
    summary = {
        "seed": seed,
        "scale": spec.name,
        "created": True,
        **counts,
        "devices": reg["devices"],
        "devices_outside_regions": reg["outside"],
        **status,
        "county_code": next(r[0] for r in plan.regions if r[1] == 3),
        "seconds": round(time.perf_counter() - t0, 2),
        "plan_seconds": round(t_plan, 2),
    }
    conn.execute(
        text(
            "INSERT INTO import_files (kind, path, sha256, actor, report) VALUES ('synthetic', :p, :h, 'synth', CAST(:r AS jsonb))"
        ),
        {"p": label, "h": digest, "r": json.dumps(summary)},
    )
    return summary


def generate_region(
    conn_or_url: Connection | Engine | str, seed: int = 1, scale: str = "county"
) -> dict:
    """Generate a synthetic region (idempotent: with it already present, a no-op returning its summary).

    `conn_or_url`: a SQLAlchemy Connection (joins its transaction), an Engine, or a database URL.
    Returns counts of what was created and `created` (False when it was already there).
    """
    if scale not in SCALES:
        raise ValueError(f"scale: {scale!r} is not one of {', '.join(SCALES)}")
    if isinstance(conn_or_url, Connection):
        if conn_or_url.in_transaction():
            return generate_into(conn_or_url, seed, scale)
        with conn_or_url.begin():
            return generate_into(conn_or_url, seed, scale)
    if isinstance(conn_or_url, str):
        from gridwatch.db import get_engine

        engine = get_engine(url=conn_or_url)
    else:
        engine = conn_or_url
    with engine.begin() as conn:
        conn.execute(
            text("SELECT pg_advisory_xact_lock(4004, :s)"), {"s": int(seed) % 2_000_000_000}
        )
        return generate_into(conn, seed, scale)


def scale_with(name: str, **changes: Any) -> Scale:
    """A named scale with some fields changed (for tests and benchmarks)."""
    return replace(SCALES[name], **changes)
