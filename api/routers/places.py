"""Places as JSON and GeoJSON: regions, grids, key sites, camera coverage; bbox filter and paging."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import ANY_ROLE, Principal, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut
from api.geojson import BBOX_QUERY, BBox, FeatureCollection, Page, collection, paging, parse_bbox
from api.scope import scope_sql

router = APIRouter(tags=["places"], responses=COMMON_RESPONSES)

CODE_PATH = Path(..., pattern=r"^[0-9]{12}$", description="12-digit division code")
CODE_QUERY = Query(
    None, pattern=r"^[0-9]{12}$", description="12-digit division code; covers everything below it"
)


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


def _where_bbox(column: str, bbox: BBox | None) -> tuple[str, dict]:
    if bbox is None:
        return "TRUE", {}
    return f"{column} && {BBox.SQL}", bbox.params()


def _feature_page(
    request: Request, select_from: str, where: list[str], params: dict, order_by: str, page: Page
) -> FeatureCollection:
    """Run `select_from WHERE ... ORDER BY ...` for one page and wrap the rows as GeoJSON."""
    sql = (
        f"{select_from} WHERE {' AND '.join(where)} ORDER BY {order_by} LIMIT :limit OFFSET :offset"
    )
    params = {**params, "limit": page.limit + 1, "offset": page.offset}
    with request.app.state.engine.connect() as conn:
        rows = conn.execute(text(sql), params).mappings().all()
    return collection(list(rows), page)


@router.get("/regions", response_model=RegionPage, summary="List regions")
def list_regions(
    request: Request,
    parent: str | None = CODE_QUERY,
    level: int | None = Query(None, ge=1, le=5, description="1 province … 5 village"),
    q: str | None = Query(
        None, max_length=64, description="Name contains (Chinese or pinyin as stored)"
    ),
    page: Page = Depends(paging),
    _user: Principal = Depends(require(*ANY_ROLE)),
) -> RegionPage:
    """Regions, filtered by parent, level or name; ordered by code."""
    where, params = ["TRUE"], {"limit": page.limit + 1, "offset": page.offset}
    if parent:
        where.append("parent_code = :parent")
        params["parent"] = parent
    if level:
        where.append("level = :level")
        params["level"] = level
    if q:
        where.append("name ILIKE :q")
        params["q"] = f"%{q.replace('%', '').replace('_', '')}%"
    with request.app.state.engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    "SELECT code, level, name, parent_code, urban_rural_code FROM regions "
                    f"WHERE {' AND '.join(where)} ORDER BY code LIMIT :limit OFFSET :offset"
                ),
                params,
            )
            .mappings()
            .all()
        )
    more = len(rows) > page.limit
    return RegionPage(
        items=[RegionOut(**r) for r in rows[: page.limit]],
        limit=page.limit,
        offset=page.offset,
        next_offset=page.offset + page.limit if more else None,
    )


@router.get(
    "/regions/{code}",
    response_model=RegionOut,
    summary="One region with counts",
    responses={404: {"model": ErrorOut}},
)
def get_region(
    request: Request, code: str = CODE_PATH, _user: Principal = Depends(require(*ANY_ROLE))
) -> RegionOut:
    """A region, how many children it has, how many devices inside it and how many are online."""
    from api.scope import region_range

    lo, hi = region_range(code)
    with request.app.state.engine.connect() as conn:
        row = (
            conn.execute(
                text(
                    "SELECT code, level, name, parent_code, urban_rural_code, "
                    "CASE WHEN geom IS NULL THEN NULL ELSE ARRAY[ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom)] END AS bbox, "
                    "(SELECT count(*) FROM regions c WHERE c.parent_code = r.code) AS children, "
                    "(SELECT count(*) FROM devices d WHERE d.retired_at IS NULL AND d.region_code BETWEEN :lo AND :hi) AS devices, "
                    "(SELECT count(*) FROM devices d WHERE d.retired_at IS NULL AND d.status = 'online' AND d.region_code BETWEEN :lo AND :hi) AS online "
                    "FROM regions r WHERE code = :code"
                ),
                {"code": code, "lo": lo, "hi": hi},
            )
            .mappings()
            .first()
        )
    if row is None:
        raise ApiError(404, f"region {code} is not loaded")
    return RegionOut(**row)


def _simplify(tolerance_m: float | None, column: str) -> str:
    if not tolerance_m:
        return f"ST_AsGeoJSON({column}, 6)"
    deg = tolerance_m / 111_320.0
    return f"ST_AsGeoJSON(ST_SimplifyPreserveTopology({column}, {deg:.8f}), 6)"


SIMPLIFY_QUERY = Query(
    None, ge=0, le=5000, description="Simplify outlines to this tolerance in metres."
)


@router.get("/geo/regions", response_model=FeatureCollection, summary="Region outlines (GeoJSON)")
def regions_geojson(
    request: Request,
    bbox: str | None = BBOX_QUERY,
    level: int | None = Query(None, ge=1, le=5),
    parent: str | None = CODE_QUERY,
    simplify_m: float | None = SIMPLIFY_QUERY,
    page: Page = Depends(paging),
    _user: Principal = Depends(require(*ANY_ROLE)),
) -> FeatureCollection:
    """Region boundaries intersecting the box, as GeoJSON MultiPolygons."""
    box = parse_bbox(bbox)
    where_box, params = _where_bbox("geom", box)
    where = [where_box, "geom IS NOT NULL"]
    if level:
        where.append("level = :level")
        params["level"] = level
    if parent:
        where.append("parent_code = :parent")
        params["parent"] = parent
    select = (
        "SELECT code AS id, code, level, name, parent_code, urban_rural_code, "
        f"{_simplify(simplify_m, 'geom')} AS geojson FROM regions"
    )
    return _feature_page(request, select, where, params, "code", page)


@router.get("/geo/grids", response_model=FeatureCollection, summary="Grids (GeoJSON)")
def grids_geojson(
    request: Request,
    bbox: str | None = BBOX_QUERY,
    level: int | None = Query(None, ge=1, le=3, description="1 street, 2 community, 3 base grid"),
    region: str | None = CODE_QUERY,
    simplify_m: float | None = SIMPLIFY_QUERY,
    page: Page = Depends(paging),
    _user: Principal = Depends(require(*ANY_ROLE)),
) -> FeatureCollection:
    """Management grids with level, households and worker count."""
    box = parse_bbox(bbox)
    where_box, params = _where_bbox("g.geom", box)
    where = [where_box]
    if level:
        where.append("g.level = :level")
        params["level"] = level
    if region:
        cond, p = scope_sql("g.region_code", [region])
        where.append(cond)
        params.update(p)
    select = (
        "SELECT g.id, g.code, g.name, g.level, g.parent_id, g.region_code, g.households, "
        "(SELECT count(*) FROM grid_workers w WHERE w.grid_id = g.id) AS workers, "
        f"{_simplify(simplify_m, 'g.geom')} AS geojson FROM grids g"
    )
    return _feature_page(request, select, where, params, "g.id", page)


@router.get("/geo/key-sites", response_model=FeatureCollection, summary="Key sites (GeoJSON)")
def key_sites_geojson(
    request: Request,
    bbox: str | None = BBOX_QUERY,
    kind: str | None = Query(None, max_length=64),
    region: str | None = CODE_QUERY,
    page: Page = Depends(paging),
    _user: Principal = Depends(require(*ANY_ROLE)),
) -> FeatureCollection:
    """Key sites that must be under electronic watch (roads, squares, stations, docks, exits…)."""
    box = parse_bbox(bbox)
    where_box, params = _where_bbox("geom", box)
    where = [where_box]
    if kind:
        where.append("kind = :kind")
        params["kind"] = kind
    if region:
        cond, p = scope_sql("region_code", [region])
        where.append(cond)
        params.update(p)
    select = "SELECT id, name, kind, region_code, ST_AsGeoJSON(geom, 6) AS geojson FROM key_sites"
    return _feature_page(request, select, where, params, "id", page)


@router.get(
    "/geo/coverage", response_model=FeatureCollection, summary="Camera coverage sectors (GeoJSON)"
)
def coverage_geojson(
    request: Request,
    bbox: str | None = BBOX_QUERY,
    region: str | None = CODE_QUERY,
    status: str | None = Query(None, pattern=r"^(online|offline|unknown)$"),
    page: Page = Depends(paging),
    user: Principal = Depends(require(*ANY_ROLE)),
) -> FeatureCollection:
    """Each camera's field-of-view polygon (sector, PTZ union or disc) with its status."""
    box = parse_bbox(bbox)
    where_box, params = _where_bbox("fov", box)
    scopes = user.visible(region)
    cond, p = scope_sql("region_code", scopes)
    params.update(p)
    where = [where_box, cond, "fov IS NOT NULL", "retired_at IS NULL"]
    if status:
        where.append("status = :status")
        params["status"] = status
    select = (
        "SELECT id, name, kind, status, region_code, heading_deg, hfov_deg, range_m, "
        "ST_AsGeoJSON(fov, 6) AS geojson FROM devices"
    )
    return _feature_page(request, select, where, params, "id", page)
