"""Places as JSON and GeoJSON: regions, grids, key sites, camera coverage; bbox filter and paging."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, StringConstraints
from sqlalchemy import Connection, Select, any_, bindparam, func, literal_column, select

from api.deps import ANY_ROLE, Db, Principal, ReadDb, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut
from api.geojson import (
    BBOX_PATTERN,
    BBOX_QUERY,
    FeatureCollection,
    Page,
    collection,
    paging,
    parse_bbox,
)
from api.query import (
    all_of,
    fetch_one,
    in_box,
    in_scope,
    json_page,
    one_page,
    page_answer,
    page_values,
    template,
)
from geo.labels import place_labels
from geo.regions import outline_geojson, region_summary
from gridwatch import schema

router = APIRouter(tags=["places"], responses=COMMON_RESPONSES)

CODE_PATH = Path(..., pattern=r"^[0-9]{12}$", description="12-digit division code")
CODE_QUERY = Query(
    None, pattern=r"^[0-9]{12}$", description="12-digit division code; covers everything below it"
)
MAX_CODES = 200


class RegionOut(BaseModel):
    """An administrative division with device counts."""

    code: str
    level: int
    name: str
    parent_code: str | None = None
    urban_rural_code: int | None = None
    children: int = 0
    devices: int = 0
    online: int = 0
    bbox: list[float] | None = None


class RegionPage(BaseModel):
    """A page of regions."""

    items: list[RegionOut]
    limit: int
    offset: int
    next_offset: int | None = None


def _feature_page(conn: Connection, stmt: Select[Any], page: Page) -> FeatureCollection:
    """Run one page of `stmt` (rows carry `geojson`) and wrap the rows as GeoJSON."""
    rows = conn.execute(one_page(stmt, page)).mappings().all()
    return collection(rows, page)


def _list_statement(names: frozenset[str]) -> Select[Any]:
    """GET /regions in one statement (json_page); the counts are for one region (GET /regions/{code})."""
    r = schema.regions
    given = names.__contains__
    cond = all_of(
        r.c.code == any_(bindparam("codes")) if given("codes") else None,
        r.c.parent_code == bindparam("parent") if given("parent") else None,
        r.c.level == bindparam("level") if given("level") else None,
        r.c.name.ilike(bindparam("name")) if given("name") else None,
    )
    cols = (r.c.code, r.c.level, r.c.name, r.c.parent_code, r.c.urban_rural_code)
    zero: Any = literal_column("0")
    defaults = (zero.label("children"), zero.label("devices"), zero.label("online"))
    no_bbox: Any = literal_column("NULL::json").label("bbox")
    return json_page(select(*cols, *defaults, no_bbox).where(cond).order_by(r.c.code))


@router.get("/regions", response_model=RegionPage, summary="List regions")
async def list_regions(
    conn: ReadDb,
    parent: str | None = CODE_QUERY,
    level: int | None = Query(None, ge=1, le=5, description="1 province … 5 village"),
    q: str | None = Query(
        None, max_length=64, description="Name contains (Chinese or pinyin as stored)"
    ),
    code: list[Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]] | None = Query(
        None,
        description=f"Only these regions (repeatable, at most {MAX_CODES}): the names of many "
        "places in one request",
        examples=[["360121201005", "360121201000"]],
    ),
    page: Page = Depends(paging),
    _user: Principal = Depends(require(*ANY_ROLE, reads=True)),
) -> Response:
    """Regions, filtered by parent, level, name or codes; ordered by code."""
    if code and len(code) > MAX_CODES:
        raise ApiError(422, f"at most {MAX_CODES} codes in one request", "code")
    given = {
        "codes": sorted(set(code)) if code else None,
        "parent": parent or None,
        "level": level or None,
        "name": f"%{q.replace('%', '').replace('_', '')}%" if q else None,
    }
    values = {k: v for k, v in given.items() if v is not None}
    names = frozenset(values)
    found = await fetch_one(
        conn,
        template(("regions", names), lambda: _list_statement(names)),
        values | page_values(page),
    )
    return page_answer(found, page)


@router.get(
    "/regions/{code}",
    response_model=RegionOut,
    summary="One region with counts",
    responses={404: {"model": ErrorOut}},
)
def get_region(
    conn: Db, code: str = CODE_PATH, _user: Principal = Depends(require(*ANY_ROLE))
) -> RegionOut:
    """A region, how many children it has, how many devices inside it and how many are online."""
    row = region_summary(conn, code)
    if row is None:
        raise ApiError(404, f"region {code} is not loaded")
    return RegionOut(**row)


SIMPLIFY_QUERY = Query(
    None, ge=0, le=5000, description="Simplify outlines to this tolerance in metres."
)


@router.get("/geo/regions", response_model=FeatureCollection, summary="Region outlines (GeoJSON)")
def regions_geojson(
    conn: Db,
    bbox: str | None = BBOX_QUERY,
    level: int | None = Query(None, ge=1, le=5),
    parent: str | None = CODE_QUERY,
    simplify_m: float | None = SIMPLIFY_QUERY,
    page: Page = Depends(paging),
    _user: Principal = Depends(require(*ANY_ROLE)),
) -> FeatureCollection:
    """Region boundaries intersecting the box, as GeoJSON MultiPolygons."""
    box = parse_bbox(bbox)
    r = schema.regions
    cond = all_of(
        in_box(r.c.geom, box),
        r.c.geom.is_not(None),
        r.c.level == level if level else None,
        r.c.parent_code == parent if parent else None,
    )
    cols = (r.c.code.label("id"), r.c.code, r.c.level, r.c.name, r.c.parent_code)
    stmt = select(*cols, r.c.urban_rural_code, outline_geojson(r.c.geom, simplify_m))
    return _feature_page(conn, stmt.where(cond).order_by(r.c.code), page)


@router.get("/geo/grids", response_model=FeatureCollection, summary="Grids (GeoJSON)")
def grids_geojson(
    conn: Db,
    bbox: str | None = BBOX_QUERY,
    level: int | None = Query(None, ge=1, le=3, description="1 street, 2 community, 3 base grid"),
    region: str | None = CODE_QUERY,
    simplify_m: float | None = SIMPLIFY_QUERY,
    page: Page = Depends(paging),
    _user: Principal = Depends(require(*ANY_ROLE)),
) -> FeatureCollection:
    """Management grids with level, households and worker count."""
    box = parse_bbox(bbox)
    g, w = schema.grids, schema.grid_workers
    cond = all_of(
        in_box(g.c.geom, box),
        g.c.level == level if level else None,
        in_scope(g.c.region_code, [region]) if region else None,
    )
    workers = select(func.count()).where(w.c.grid_id == g.c.id).scalar_subquery()
    cols = (g.c.id, g.c.code, g.c.name, g.c.level, g.c.parent_id, g.c.region_code, g.c.households)
    stmt = select(*cols, workers.label("workers"), outline_geojson(g.c.geom, simplify_m))
    return _feature_page(conn, stmt.where(cond).order_by(g.c.id), page)


@router.get("/geo/key-sites", response_model=FeatureCollection, summary="Key sites (GeoJSON)")
def key_sites_geojson(
    conn: Db,
    bbox: str | None = BBOX_QUERY,
    kind: str | None = Query(None, max_length=64),
    region: str | None = CODE_QUERY,
    page: Page = Depends(paging),
    _user: Principal = Depends(require(*ANY_ROLE)),
) -> FeatureCollection:
    """Key sites that must be under electronic watch (roads, squares, stations, docks, exits…)."""
    box = parse_bbox(bbox)
    k = schema.key_sites
    cond = all_of(
        in_box(k.c.geom, box),
        k.c.kind == kind if kind else None,
        in_scope(k.c.region_code, [region]) if region else None,
    )
    stmt = select(k.c.id, k.c.name, k.c.kind, k.c.region_code, outline_geojson(k.c.geom))
    return _feature_page(conn, stmt.where(cond).order_by(k.c.id), page)


@router.get(
    "/geo/coverage", response_model=FeatureCollection, summary="Camera coverage sectors (GeoJSON)"
)
def coverage_geojson(
    conn: Db,
    bbox: str | None = BBOX_QUERY,
    region: str | None = CODE_QUERY,
    status: str | None = Query(None, pattern=r"^(online|offline|unknown)$"),
    page: Page = Depends(paging),
    user: Principal = Depends(require(*ANY_ROLE)),
) -> FeatureCollection:
    """Each camera's field-of-view polygon (sector, PTZ union or disc) with its status."""
    box = parse_bbox(bbox)
    d = schema.devices
    cond = all_of(
        in_box(d.c.fov, box),
        in_scope(d.c.region_code, user.visible(region)),
        d.c.fov.is_not(None),
        d.c.retired_at.is_(None),
        d.c.status == status if status else None,
    )
    cols = (d.c.id, d.c.name, d.c.kind, d.c.status, d.c.region_code, d.c.heading_deg)
    stmt = select(*cols, d.c.hfov_deg, d.c.range_m, outline_geojson(d.c.fov))
    return _feature_page(conn, stmt.where(cond).order_by(d.c.id), page)


# Which place names a map shows at a zoom (Leaflet/web-mercator zoom levels, both ends included):
# counties when a city fills the screen, townships from there to street level, villages and
# natural villages as they become distinguishable, road names where roads are imported.
LABEL_ZOOMS: dict[str, tuple[int, int]] = {
    "county": (8, 11),
    "township": (10, 15),
    "village": (13, 22),
    "natural_village": (15, 22),
    "road": (14, 22),
}
LABEL_MAX_SQ_DEG = 100.0  # a wide screen at zoom 8; what is asked is bounded by the zoom
_LABEL_LEVEL = {"county": 3, "township": 4, "village": 5}


def _text_angle(azimuth: float | None) -> float | None:
    """A road's azimuth (degrees clockwise from north, on the map) as the turn that lays text
    along it, clockwise from horizontal, kept within ±90° so it never reads upside down."""
    if azimuth is None:
        return None
    turn = (azimuth - 90.0) % 360.0
    if turn > 270.0:
        turn -= 360.0
    elif turn > 90.0:
        turn -= 180.0
    return round(turn, 1)


@router.get(
    "/geo/labels",
    response_model=FeatureCollection,
    summary="Place names for a map view (GeoJSON points)",
    operation_id="place_labels",
)
def labels_geojson(
    conn: Db,
    bbox: str = Query(
        ...,
        max_length=200,
        pattern=BBOX_PATTERN,
        description=f"The view: west,south,east,north in WGS 84 degrees; at most "
        f"{LABEL_MAX_SQ_DEG:g} square degrees",
        examples=["115.8,28.4,116.1,28.7"],
    ),
    zoom: int = Query(..., ge=0, le=22, description="The map's zoom: decides which names"),
    limit: int = Query(400, ge=1, le=1000, description="At most this many names"),
    _user: Principal = Depends(require(*ANY_ROLE)),
) -> FeatureCollection:
    """County, township, village and natural-village names from the hub's own regions, and road
    names where roads are imported, for the view at this zoom (see LABEL_ZOOMS). Each is a point:
    `kind`, `name`, and for a road `angle`, the clockwise turn (degrees from horizontal) that lays
    its text along the road. Most important first: bigger places before smaller, places before
    roads; the page drops names that would overlap."""
    box = parse_bbox(bbox, LABEL_MAX_SQ_DEG)
    if box is None:  # required above; keeps the type checker sure
        raise ApiError(422, "bbox is required", "bbox")
    shown = {k for k, (lo, hi) in LABEL_ZOOMS.items() if lo <= zoom <= hi}
    rows = (
        place_labels(
            conn,
            box.params(),
            levels=sorted(_LABEL_LEVEL[k] for k in shown if k in _LABEL_LEVEL),
            natural="natural_village" in shown,
            roads="road" in shown,
            limit=limit + 1,
        )
        if shown
        else []
    )
    for row in rows:
        row["angle"] = _text_angle(row["angle"]) if row["kind"] == "road" else None
    return collection(rows, Page(limit, 0))
