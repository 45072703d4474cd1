"""Fixtures for geo tests: a tiny hand-made county near Nanchang with villages and grids."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import text

# A county square 115.90-116.00 E, 28.50-28.60 N split into two villages (west, east) under one
# township; one street grid covering the county, two community grids, four base grids.
COUNTY = "360121000000"
TOWNSHIP = "360121100000"
VILLAGE_W = "360121100200"
VILLAGE_E = "360121100202"


def box(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"MULTIPOLYGON((({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0})))"


_serial = itertools.count(1)


def new_id(type_code: int = 132, network: int = 0, county: str = "360121") -> str:
    """A fresh 20-digit device id (unique within this test run)."""
    return f"{county}00" + f"00{type_code:03d}{network}" + f"{next(_serial):06d}"


@pytest.fixture(scope="session")
def tiny_county(engine) -> dict:
    """Insert the tiny county once per run; returns codes and grid ids."""
    with engine.begin() as c:
        rows = [
            ("360000000000", 1, "江西省", None, None, None),
            ("360100000000", 2, "南昌市", "360000000000", None, None),
            (COUNTY, 3, "南昌县", "360100000000", None, box(115.90, 28.50, 116.00, 28.60)),
            (TOWNSHIP, 4, "莲塘镇", COUNTY, None, box(115.90, 28.50, 116.00, 28.60)),
            (VILLAGE_W, 5, "莲塘村委会", TOWNSHIP, 220, box(115.90, 28.50, 115.95, 28.60)),
            (VILLAGE_E, 5, "斗门村委会", TOWNSHIP, 220, box(115.95, 28.50, 116.00, 28.60)),
        ]
        for code, level, name, parent, urc, geom in rows:
            c.execute(
                text(
                    "INSERT INTO regions (code, level, name, parent_code, urban_rural_code, geom) "
                    "VALUES (:c, :l, :n, :p, :u, ST_GeomFromText(:g, 4326)) ON CONFLICT DO NOTHING"
                ),
                {"c": code, "l": level, "n": name, "p": parent, "u": urc, "g": geom},
            )

        def grid(code, level, parent, region, geom, households=None):
            return c.execute(
                text(
                    "INSERT INTO grids (code, name, level, parent_id, region_code, households, geom) "
                    "VALUES (:code, :code, :level, :parent, :region, :hh, ST_GeomFromText(:g, 4326)) "
                    "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name RETURNING id"
                ),
                {
                    "code": code,
                    "level": level,
                    "parent": parent,
                    "region": region,
                    "hh": households,
                    "g": geom,
                },
            ).scalar_one()

        street = grid("T-S1", 1, None, TOWNSHIP, box(115.90, 28.50, 116.00, 28.60))
        west = grid("T-C1", 2, street, VILLAGE_W, box(115.90, 28.50, 115.95, 28.60))
        east = grid("T-C2", 2, street, VILLAGE_E, box(115.95, 28.50, 116.00, 28.60))
        base = {
            "w_south": grid("T-B1", 3, west, VILLAGE_W, box(115.90, 28.50, 115.95, 28.55), 280),
            "w_north": grid("T-B2", 3, west, VILLAGE_W, box(115.90, 28.55, 115.95, 28.60), 310),
            "e_south": grid("T-B3", 3, east, VILLAGE_E, box(115.95, 28.50, 116.00, 28.55), 300),
            "e_north": grid("T-B4", 3, east, VILLAGE_E, box(115.95, 28.55, 116.00, 28.60), 900),
        }
    return {
        "county": COUNTY,
        "township": TOWNSHIP,
        "west": VILLAGE_W,
        "east": VILLAGE_E,
        "street": street,
        "community": {"west": west, "east": east},
        "base": base,
    }


@pytest.fixture(scope="session")
def synth_url(db_url):
    """A separate database holding the small synthetic county (seed 7), dropped after the run."""
    import os

    from gridwatch.db import drop_database, get_engine, migrate

    url = db_url + "_syn"
    migrate(url)
    from simulators.region import generate_region

    summary = generate_region(url, seed=7, scale="small")
    yield url, summary
    if not os.environ.get("GRIDWATCH_KEEP_TEST_DB"):
        get_engine(url=url).dispose()
        drop_database(url)


@pytest.fixture(scope="session")
def synth_engine(synth_url):
    from gridwatch.db import get_engine

    return get_engine(url=synth_url[0])
