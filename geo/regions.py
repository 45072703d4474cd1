"""Reads of the loaded divisions (regions): whether one is loaded, its counts, outlines and extent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, RowMapping, and_, case, exists, func, select, text
from sqlalchemy.dialects.postgresql import array

from gridwatch import schema
from hardware.region_code import RegionCode

_r, _d = schema.regions, schema.devices


def outline_geojson(geom: Any, tolerance_m: float | None = None) -> Any:
    """The outline as GeoJSON text (6 decimals, label `geojson`), simplified to about
    `tolerance_m` if given."""
    if tolerance_m:
        geom = func.ST_SimplifyPreserveTopology(geom, tolerance_m / 111_320.0)
    return func.ST_AsGeoJSON(geom, 6).label("geojson")


def region_loaded(conn: Connection, code: str) -> bool:
    """Whether the division `code` is loaded."""
    return bool(conn.execute(select(exists().where(_r.c.code == code))).scalar_one())


def region_name(conn: Connection, code: str) -> str | None:
    """The division's name; None when it is not loaded."""
    return conn.execute(select(_r.c.name).where(_r.c.code == code)).scalar()


def region_summary(conn: Connection, code: str) -> RowMapping | None:
    """One region with its bbox, how many children, and how many active and online devices lie
    inside it; None when it is not loaded."""
    lo, hi = RegionCode.parse(code).range
    child = _r.alias("c")
    inside = and_(_d.c.retired_at.is_(None), _d.c.region_code.between(lo, hi))
    g = _r.c.geom
    stmt = select(
        _r.c.code,
        _r.c.level,
        _r.c.name,
        _r.c.parent_code,
        _r.c.urban_rural_code,
        case(
            (g.is_(None), None),
            else_=array([func.ST_XMin(g), func.ST_YMin(g), func.ST_XMax(g), func.ST_YMax(g)]),
        ).label("bbox"),
        select(func.count())
        .select_from(child)
        .where(child.c.parent_code == _r.c.code)
        .scalar_subquery()
        .label("children"),
        select(func.count()).where(inside).scalar_subquery().label("devices"),
        select(func.count())
        .where(inside, _d.c.status == "online")
        .scalar_subquery()
        .label("online"),
    ).where(_r.c.code == code)
    return conn.execute(stmt).mappings().first()


def region_outlines(conn: Connection, level: int, within: str, simplify_m: float) -> list[Row[Any]]:
    """(code, name, geojson) of every region of `level` inside `within` that has an outline,
    simplified to about `simplify_m` metres, by code."""
    lo, hi = RegionCode.parse(within).range
    stmt = (
        select(_r.c.code, _r.c.name, outline_geojson(_r.c.geom, simplify_m))
        .where(_r.c.level == level, _r.c.code.between(lo, hi), _r.c.geom.is_not(None))
        .order_by(_r.c.code)
    )
    return list(conn.execute(stmt).all())


# Raw SQL: ST_Extent is an aggregate returning a box2d, which Core would select as a geometry;
# the box's corners are read in the outer query so the aggregate runs once.
_EXTENT_OF_REGION = "SELECT ST_Extent(geom) AS e FROM regions WHERE code = :c"
_EXTENT_OF_TOP = (
    "SELECT ST_Extent(geom) AS e FROM regions "
    "WHERE level = (SELECT min(level) FROM regions WHERE geom IS NOT NULL)"
)
_EXTENT_OF_DEVICES = "SELECT ST_Extent(position) AS e FROM devices"


def _extent(conn: Connection, inner: str, params: dict[str, Any]) -> tuple[float, ...] | None:
    row = conn.execute(
        text(f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ({inner}) s"), params
    ).first()
    return None if row is None or row[0] is None else tuple(row)


def first_view_extent(conn: Connection, region: str | None) -> tuple[float, ...] | None:
    """(west, south, east, north) to show first: the region asked for, else the top level
    loaded, else every device; None when there is nothing."""
    if region:
        return _extent(conn, _EXTENT_OF_REGION, {"c": region})
    return _extent(conn, _EXTENT_OF_TOP, {}) or _extent(conn, _EXTENT_OF_DEVICES, {})
