"""Geometry helpers for synthetic regions: local metric offsets, noisy outlines, Voronoi tilings, spanning trees."""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQ = 111_320.0

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
