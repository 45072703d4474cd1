"""The plan of a synthetic region: divisions, grids, natural villages, roads and key sites, deterministic by seed."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import LineString, Point
from shapely.geometry.base import BaseGeometry

from simulators.region_shapes import (
    blob,
    mst_edges,
    multi,
    offset,
    random_points,
    rect,
    voronoi_split,
)


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
            out.append((f"{k_v:03d}", 220 if rng.random() < 0.8 else 210, f"{base}村委会"))
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
