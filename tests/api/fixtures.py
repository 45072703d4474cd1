"""Small places, users and device ids for the API and map tests (codes no other area uses)."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import text

# Gao'an (高安市, Yichun) and Yushui (渝水区, Xinyu): two counties in two cities of Jiangxi.
PROVINCE = "360000000000"
CITY_A, COUNTY_A, TOWN_A = "360900000000", "360983000000", "360983100000"
VILLAGE_A1, VILLAGE_A2 = "360983100201", "360983100202"
CITY_B, COUNTY_B, TOWN_B, VILLAGE_B1 = (
    "360500000000",
    "360502000000",
    "360502100000",
    "360502100201",
)

# boxes (west, south, east, north), WGS 84
BOX_A = (115.30, 28.35, 115.50, 28.50)
BOX_TOWN_A = (115.30, 28.35, 115.40, 28.50)
BOX_A1 = (115.30, 28.35, 115.40, 28.425)
BOX_A2 = (115.30, 28.425, 115.40, 28.50)
BOX_B = (114.90, 27.75, 115.00, 27.85)
GRID_A1 = (115.30, 28.35, 115.35, 28.425)  # a base grid inside village A1

REGIONS = [
    (PROVINCE, 1, "江西省", None, None, None),
    (CITY_A, 2, "宜春市", PROVINCE, None, None),
    (COUNTY_A, 3, "高安市", CITY_A, None, BOX_A),
    (TOWN_A, 4, "筠阳街道", COUNTY_A, None, BOX_TOWN_A),
    (VILLAGE_A1, 5, "东村", TOWN_A, 220, BOX_A1),
    (VILLAGE_A2, 5, "西村", TOWN_A, 220, BOX_A2),
    (CITY_B, 2, "新余市", PROVINCE, None, None),
    (COUNTY_B, 3, "渝水区", CITY_B, None, BOX_B),
    (TOWN_B, 4, "城南街道", COUNTY_B, None, BOX_B),
    (VILLAGE_B1, 5, "南村", TOWN_B, 220, BOX_B),
]

PASSWORDS = {
    "t-admin": ("admin", "admin-pass-1", []),
    "t-operator": ("operator", "operator-pass-1", []),
    "t-installer": ("installer", "installer-pass-1", [TOWN_A]),
    "t-installer-b": ("installer", "installer-pass-2", [COUNTY_B]),
    "t-auditor": ("auditor", "auditor-pass-1", []),
}

_serial = itertools.count(1)


def device_id(county: str = COUNTY_A, type_code: str = "132", serial: int | None = None) -> str:
    """A fresh valid 20-digit id in the county (industry 00, network 5)."""
    n = serial if serial is not None else 500000 + next(_serial) + (hash(county) % 1000) * 0
    return f"{county[:6]}00" + "00" + type_code + "5" + f"{n:06d}"


def _box_wkt(box: tuple[float, float, float, float]) -> str:
    w, s, e, n = box
    return f"MULTIPOLYGON((({w} {s},{e} {s},{e} {n},{w} {n},{w} {s})))"


def load_places(engine) -> dict:
    """Insert the fixture regions and one base grid (idempotent); returns the grid id."""
    with engine.begin() as conn:
        for code, level, name, parent, urc, box in REGIONS:
            conn.execute(
                text(
                    "INSERT INTO regions (code, level, name, parent_code, urban_rural_code, geom) "
                    "VALUES (:c, :l, :n, :p, :u, ST_GeomFromText(CAST(:g AS text), 4326)) "
                    "ON CONFLICT (code) DO NOTHING"
                ),
                {
                    "c": code,
                    "l": level,
                    "n": name,
                    "p": parent,
                    "u": urc,
                    "g": _box_wkt(box) if box else None,
                },
            )
        grid = conn.execute(
            text(
                "INSERT INTO grids (code, name, level, region_code, households, geom) "
                "VALUES ('T-GRID-A1', '东村一网格', 3, :r, 280, ST_GeomFromText(:g, 4326)) "
                "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name RETURNING id"
            ),
            {"r": VILLAGE_A1, "g": _box_wkt(GRID_A1)},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO key_sites (name, kind, region_code, geom) SELECT '东村广场', 'square', :r, "
                "ST_Buffer(ST_SetSRID(ST_MakePoint(115.33, 28.38), 4326), 0.0005) "
                "WHERE NOT EXISTS (SELECT 1 FROM key_sites WHERE name = '东村广场')"
            ),
            {"r": VILLAGE_A1},
        )
    return {"grid_id": grid}


# Session fixtures shared by the API and the map tests (each conftest imports them by name).
@pytest.fixture(scope="session")
def places(engine) -> dict:
    """The fixture regions and grid in the test database."""
    return load_places(engine)


@pytest.fixture(scope="session")
def users(engine, places) -> dict:
    """One user per role (and a second installer elsewhere)."""
    from api.users import ensure_user

    with engine.begin() as conn:
        for name, (role, password, regions) in PASSWORDS.items():
            ensure_user(conn, name, password, role, regions=regions)
    return PASSWORDS
