"""Synthetic regions, deterministic by seed: a county near Nanchang (or a whole province) with everything audits need."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, text

from simulators.region_devices import cameras
from simulators.region_load import load_plan, simulate_status
from simulators.region_plan import SCALES, Plan, Scale, build_plan
from simulators.region_shapes import (
    M_PER_DEG_LAT,
    M_PER_DEG_LON_EQ,
    bearing,
    blob,
    mst_edges,
    multi,
    offset,
    random_points,
    rect,
    voronoi_split,
)

__all__ = [
    "SCALES",
    "Plan",
    "Scale",
    "build_plan",
    "cameras",
    "generate_into",
    "generate_region",
    "load_plan",
    "scale_with",
    "simulate_status",
    "voronoi_split",
    "offset",
    "bearing",
    "blob",
    "mst_edges",
    "multi",
    "random_points",
    "rect",
    "M_PER_DEG_LAT",
    "M_PER_DEG_LON_EQ",
]


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
    # fresh rows in this transaction have no statistics yet; without them the planner scans
    conn.execute(
        text("ANALYZE regions, grids, grid_workers, natural_villages, intersections, key_sites")
    )
    from geo.bulk import register_many

    reg = register_many(
        conn,
        cameras(plan, seed, spec),
        "synth",
        reload_broker=False,
        refresh_compliance=False,
        batch=50_000,
    )
    conn.execute(text("ANALYZE devices"))
    status = simulate_status(conn, seed, spec.presence_days)
    conn.execute(text("ANALYZE devices"))
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
