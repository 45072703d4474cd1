"""Synthetic regions: deterministic by seed, complete, idempotent, with deliberate findings."""

from __future__ import annotations

import hashlib

import pytest
import shapely
from sqlalchemy import text

from simulators.region import SCALES, build_plan, cameras, generate_region, voronoi_split


def _digest(plan) -> str:
    h = hashlib.sha256()
    for r in plan.regions:
        h.update(repr(r[:5]).encode())
        if r[5] is not None:
            h.update(shapely.to_wkb(r[5]))
    for g in plan.grids:
        h.update(g["code"].encode() + shapely.to_wkb(g["geom"]))
    return h.hexdigest()


def test_same_seed_same_region_other_seed_differs():
    a, b, c = (build_plan(s, SCALES["small"]) for s in (3, 3, 4))
    assert _digest(a) == _digest(b) != _digest(c)
    ids_a = [d["id"] for d in cameras(a, 3, SCALES["small"])]
    ids_b = [d["id"] for d in cameras(b, 3, SCALES["small"])]
    assert ids_a == ids_b and len(set(ids_a)) == len(ids_a)


def test_voronoi_cells_tile_the_polygon():
    import numpy as np
    from shapely.geometry import Point

    poly = Point(115.9, 28.5).buffer(0.1)
    cells = voronoi_split(poly, 12, np.random.default_rng(1))
    union = shapely.union_all(cells)
    assert len(cells) == 12
    assert abs(union.area - poly.area) < 1e-9 * poly.area + 1e-12
    overlap = sum(c.area for c in cells) - union.area
    assert overlap < 1e-9 * poly.area


def test_generated_county_is_loaded_and_consistent(synth_url, synth_engine):
    url, summary = synth_url
    assert summary["created"] is True
    with synth_engine.connect() as c:
        counts = dict(c.execute(text("SELECT level, count(*) FROM regions GROUP BY level")).all())
        villages_without_geom = c.execute(
            text("SELECT count(*) FROM regions WHERE level >= 3 AND geom IS NULL")
        ).scalar()
        devices = c.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE region_code IS NULL), "
                "count(*) FILTER (WHERE fov IS NULL AND kind <> 'smart_door') FROM devices"
            )
        ).one()
        real = c.execute(text("SELECT name FROM regions WHERE code = '360121100200'")).scalar()
        nv_orphans = c.execute(
            text("SELECT count(*) FROM natural_villages WHERE village_code IS NULL")
        ).scalar()
        nv_outside = c.execute(
            text(
                "SELECT count(*) FROM natural_villages n JOIN regions r ON r.code = n.village_code WHERE NOT ST_Covers(r.geom, n.geom)"
            )
        ).scalar()
        base_no_parent = c.execute(
            text("SELECT count(*) FROM grids WHERE level > 1 AND parent_id IS NULL")
        ).scalar()
        kinds = dict(c.execute(text("SELECT kind, count(*) FROM key_sites GROUP BY kind")).all())
        statuses = dict(
            c.execute(text("SELECT status, count(*) FROM devices GROUP BY status")).all()
        )
    assert counts[3] == 1 and counts[4] == 3 and counts[5] == summary["villages"]
    assert villages_without_geom == 0
    assert devices[0] == summary["devices"] > 100 and devices[1] == 0 and devices[2] == 0
    assert real == "莲塘村委会" or real is None  # the sample's real village names are reused
    assert nv_orphans == 0 and nv_outside == 0 and base_no_parent == 0
    assert {"square", "school", "city_exit", "checkpoint", "dock"} <= set(kinds)
    assert statuses.get("online", 0) > statuses.get("offline", 0) > 0


def test_generate_again_is_a_no_op(synth_url, synth_engine):
    url, summary = synth_url
    with synth_engine.connect() as c:
        before = c.execute(text("SELECT count(*) FROM devices")).scalar()
    again = generate_region(url, seed=7, scale="small")
    with synth_engine.connect() as c:
        after = c.execute(text("SELECT count(*) FROM devices")).scalar()
    assert again["created"] is False and again["devices"] == summary["devices"] == after == before


def test_unknown_scale_is_rejected(synth_url):
    with pytest.raises(ValueError, match="scale"):
        generate_region(synth_url[0], seed=7, scale="galaxy")
