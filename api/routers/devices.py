"""Devices: list, GeoJSON, register, preview, update, move, retire, MQTT credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import (
    Connection,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSON, aggregate_order_by

from api.deps import ANY_ROLE, Db, DbTx, Principal, ReadDb, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut, unprocessable
from api.geojson import (
    BBOX_PATTERN,
    BBOX_QUERY,
    FeatureCollection,
    Page,
    collection,
    paging,
    parse_bbox,
)
from api.placement import check_position, device_region
from api.preview import Preview, preview
from api.query import (
    FROM_HUB,
    all_of,
    box_values,
    fetch_one,
    from_hub,
    in_box,
    in_box_bound,
    in_scope,
    in_scope_bound,
    json_answer,
    json_columns,
    json_page,
    one_page,
    page_answer,
    page_values,
    scope_values,
    template,
)
from api.trail import record
from geo.device_reads import device_standing
from geo.registry import (
    DeviceRegistration,
    decode,
    register_device,
    retire_device,
    update_device,
)
from gridwatch import schema
from gridwatch.table_models import table_model
from hardware.contract.topics import device_topics
from hardware.credentials import device_username
from maps.tiles import MOVING_KINDS

router = APIRouter(tags=["devices"], responses=COMMON_RESPONSES)

ID_PATH = Path(..., pattern=r"^[0-9]{20}$", description="20-digit GB/T 28181 id")
REGION_QUERY = Query(
    None, pattern=r"^[0-9]{12}$", description="12-digit division code; covers everything below it"
)
# typed as FastAPI's `responses` (int | str keys): merged with ** into it
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such device"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "already registered / already retired"}
}

# Columns of `devices` a device's API view leaves out: geometry is given as lon/lat (and the
# coverage polygon as GeoJSON on request); presets, the stream URL (may carry credentials) and
# the moving devices' last fix are for the map and the workers.
HIDDEN_COLUMNS = frozenset(
    {
        "position",
        "fov",
        "presets",
        "stream_url",
        "last_position",
        "last_position_at",
        "last_speed_kmh",
        "last_heading_deg",
        "village_code",
    }
)
OUT_COLUMNS = tuple(c.name for c in schema.devices.c if c.name not in HIDDEN_COLUMNS)
_dev = schema.devices
DEVICE_SELECT = (
    *(_dev.c[name] for name in OUT_COLUMNS),
    func.ST_X(_dev.c.position).label("lon"),
    func.ST_Y(_dev.c.position).label("lat"),
    # never the URL (it may hold a password); a GB/T 28181 channel plays through its gateway
    or_(
        _dev.c.stream_url.isnot(None),
        exists().where(schema.gb_devices.c.device_id == _dev.c.id),
    ).label("has_stream"),
    from_hub(_dev.c.origin),
)

DeviceOut: type[BaseModel] = table_model(
    "DeviceOut",
    _dev,
    OUT_COLUMNS,
    doc="A registered device as stored (positions WGS 84).",
    extra={
        "lon": (float | None, None),
        "lat": (float | None, None),
        "fov": (
            dict[str, Any] | None,
            Field(None, description="Coverage polygon (GeoJSON), when asked for"),
        ),
        "from_hub": (str | None, FROM_HUB),
        "has_stream": (
            bool,
            Field(
                False,
                description="It has a stream URL or is a GB/T 28181 channel: "
                "POST /devices/{id}/live plays it",
            ),
        ),
        # lists only (GET /devices): where it is by name, since when it is down, its health
        "village_name": (str | None, Field(None, description="Village holding it (lists)")),
        "township_name": (str | None, Field(None, description="Township holding it (lists)")),
        "offline_since": (
            datetime | None,
            Field(None, description="Offline ones (lists): end of the last online period"),
        ),
        "health": (
            Literal["intact", "faulty"] | None,
            Field(None, description="Cameras (lists): the latest video-quality diagnosis"),
        ),
    },
)


class DevicePage(BaseModel):
    """A page of devices; `next_cursor` for keyset paging by id."""

    items: list[DeviceOut]  # type: ignore[valid-type]  # a model built from schema.devices
    limit: int
    offset: int
    next_offset: int | None = None
    next_cursor: str | None = None


class ChangeResult(BaseModel):
    """What a register/update/move/retire did."""

    id: str
    action: str
    kind: str | None = None
    lon: float | None = None
    lat: float | None = None
    region_code: str | None = None
    grid_id: int | None = None
    hfov_deg: float | None = None
    range_m: float | None = None
    fov_geojson: dict[str, Any] | None = None
    findings: list[str] = []
    compliance: Any = None


class MoveIn(BaseModel):
    """A new position for a device."""

    model_config = ConfigDict(extra="forbid", strict=True)

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-89, le=89)
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    heading_deg: float | None = Field(None, ge=0, le=360)


class RetireIn(BaseModel):
    """Why a device is retired."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=500)


class MqttCredentials(BaseModel):
    """What to configure on the device so it can talk to the hub."""

    url: str = Field(
        description="Broker URL for the device (GRIDWATCH_MQTT_PUBLIC_URL, else the hub's broker)",
        examples=["mqtts://hub.lan:8883"],
    )
    host: str
    port: int
    username: str
    password: str | None = Field(
        None, description="Only in the answer to POST (a reset): shown once, never stored."
    )
    topics: dict[str, str]


def _accepts_none(annotation: Any) -> bool:
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return type(None) in typing.get_args(annotation)
    return annotation is type(None)


def _changes_model() -> type[BaseModel]:
    """Every registration field but the id, all optional; those a device cannot be without
    (lon, lat, crs, ptz...) may be left out but not set to null."""
    fields: dict[str, Any] = {}
    for name, info in DeviceRegistration.model_fields.items():
        if name == "id":
            continue
        copy = info._copy() if hasattr(info, "_copy") else info
        copy.default = None
        copy.default_factory = None
        annotation = (
            info.annotation if not _accepts_none(info.annotation) else info.annotation | None
        )
        fields[name] = (annotation, copy)
    return create_model(
        "DeviceChanges",
        __config__=ConfigDict(extra="forbid"),
        __doc__="Fields to change (only those given); lon/lat in `crs` move the device.",
        **fields,
    )


DeviceChanges = _changes_model()
# Fields a registration cannot be without: a change may not set them to null.
NON_NULLABLE = frozenset(
    name
    for name, info in DeviceRegistration.model_fields.items()
    if name != "id" and not _accepts_none(info.annotation)
)


def _plain_geo(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_geo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_geo(v) for v in value]
    return value


def _result(out: dict) -> ChangeResult:
    data = {k: out.get(k) for k in ChangeResult.model_fields}
    data["fov_geojson"] = _plain_geo(data.get("fov_geojson"))
    data["findings"] = out.get("findings") or []
    return ChangeResult(**data)


def _emit(conn, kind: str, region: str | None, payload: dict) -> None:
    """Tell the live stream (ingest's event bus) about a registry change; best effort."""
    try:
        from ingest.events import emit_event
    except ImportError:
        return
    emit_event(conn, kind, region, payload)


def _list_columns() -> tuple[Any, ...]:
    """The list's own columns: village and township by name, since when offline, health."""
    d, r, p = schema.devices, _region, _parent
    h, pr = schema.camera_health, schema.device_presence
    intact = (
        select(h.c.intact)
        .where(h.c.device_id == d.c.id)
        .order_by(h.c.ts.desc())
        .limit(1)
        .scalar_subquery()
    )
    ended = select(func.max(pr.c.ended_at)).where(pr.c.device_id == d.c.id).scalar_subquery()
    return (
        case((r.c.level == 5, r.c.name)).label("village_name"),
        case((r.c.level == 5, p.c.name), (r.c.level == 4, r.c.name)).label("township_name"),
        case((d.c.status == "offline", func.coalesce(ended, d.c.last_seen))).label("offline_since"),
        case((intact.is_(True), "intact"), (intact.is_(False), "faulty")).label("health"),
    )


_region = schema.regions.alias("r")
_parent = schema.regions.alias("p")


def _like(value: str) -> str:
    """A LIKE pattern matching `value` literally (its escape, % and _ escaped)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _list_statement(
    names: frozenset[str], scopes: int | None, health: str | None, order: str
) -> Select[Any]:
    """GET /devices in one statement (json_page): the filters `names` as parameters."""
    d, r, p, h = schema.devices, _region, _parent, schema.camera_health
    checked = select(h.c.device_id).where(h.c.device_id == d.c.id).exists()
    latest = (
        select(h.c.intact)
        .where(h.c.device_id == d.c.id)
        .order_by(h.c.ts.desc())
        .limit(1)
        .scalar_subquery()
    )
    given = names.__contains__
    cond = all_of(
        in_scope_bound(d.c.region_code, scopes),
        None if given("include_retired") else d.c.retired_at.is_(None),
        d.c.kind == any_(bindparam("kinds")) if given("kinds") else None,
        d.c.status == bindparam("status") if given("status") else None,
        d.c.id > bindparam("after") if given("after") else None,
        in_box_bound(func.coalesce(d.c.last_position, d.c.position)) if given("box_west") else None,
        ~checked if health == "unchecked" else None,
        latest.is_(health == "intact") if health in ("intact", "faulty") else None,
    )
    if given("q_prefix"):
        name: Any = bindparam("q_anywhere")
        cond = and_(
            cond,
            or_(
                d.c.id.like(bindparam("q_prefix")),
                d.c.name.ilike(name),
                r.c.name.ilike(name),
                p.c.name.ilike(name),
            ),
        )
    cols = _list_columns()
    offline_since = cols[2].element  # by its value, not by the answer's text
    order_by = (
        (d.c.id,)
        if order == "id"
        else ((d.c.status != "offline"), offline_since.desc().nulls_last(), d.c.id)
    )
    source = d.outerjoin(r, r.c.code == d.c.region_code).outerjoin(p, p.c.code == r.c.parent_code)
    no_fov: Any = literal_column("NULL::json").label("fov")  # asked for on one device only
    stmt = select(*json_columns((*DEVICE_SELECT, *cols)), no_fov).select_from(source)
    return json_page(stmt.where(cond).order_by(*order_by), cursor="id" if order == "id" else None)


@router.get("/devices", response_model=DevicePage, summary="List devices")
async def list_devices(
    conn: ReadDb,
    region: str | None = REGION_QUERY,
    kind: list[str] | None = Query(None, description="Only these kinds (repeatable)"),
    status: str | None = Query(None, pattern=r"^(online|offline|unknown)$"),
    q: str | None = Query(
        None,
        max_length=64,
        description="Search: id prefix; or name, village or township name contains",
        examples=["东村"],
    ),
    health: Literal["intact", "faulty", "unchecked"] | None = Query(
        None, description="Cameras by their latest video-quality diagnosis"
    ),
    bbox: str | None = BBOX_QUERY,
    order: Literal["id", "offline_since"] = Query(
        "id", description="id; or offline_since: offline devices first, latest outage first"
    ),
    include_retired: bool = False,
    after: str | None = Query(
        None, pattern=r"^[0-9]{20}$", description="Cursor: ids after this one (order=id)"
    ),
    page: Page = Depends(paging),
    user: Principal = Depends(require(*ANY_ROLE, reads=True)),
) -> Response:
    """Devices in the user's regions, filtered, with village, outage and health; offset or
    cursor paging."""
    if kind and (len(kind) > 20 or any(len(k) > 64 for k in kind)):
        raise ApiError(422, "at most 20 kinds of at most 64 characters", "kind")
    scopes = user.visible(region)
    q = q.strip() if q else None
    given = {
        "include_retired": True if include_retired else None,
        "kinds": sorted(set(kind)) if kind else None,
        "status": status or None,
        "after": after if after and order == "id" else None,
        "q_prefix": f"{_like(q)}%" if q else None,
        "q_anywhere": f"%{_like(q)}%" if q else None,
    }
    values: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    values |= box_values(parse_bbox(bbox)) | scope_values(scopes)
    names, count = frozenset(values), None if scopes is None else len(scopes)
    tpl = template(
        ("devices", names, count, health, order),
        lambda: _list_statement(names, count, health, order),
    )
    found = await fetch_one(conn, tpl, values | page_values(page))
    return page_answer(
        found,
        page,
        next_cursor=found.cursor.strip() if found.more and order == "id" else None,
    )


class DeviceSummary(BaseModel):
    """How many devices there are, by status and kind (in the box / region / user's scope)."""

    total: int
    online: int
    offline: int
    unknown: int
    by_kind: dict[str, int]


def _summary_statement(names: frozenset[str], scopes: int | None) -> Select[Any]:
    """GET /devices/summary: (kind, status, n) rows as one JSON array, counted from the narrow
    device_tally (the active devices; migration 0014) rather than from the wide,
    heartbeat-churned rows of devices. A device that reports positions of its own (`moving`) is
    where its last position is (read from devices, for those few rows only), else where it was
    registered."""
    t, d = schema.device_tally, schema.devices
    last_position = select(d.c.last_position).where(d.c.id == t.c.id).scalar_subquery()
    # two arms rather than one CASE: PostgreSQL estimates the registered positions' share in the
    # box from device_tally's statistics (a good estimate lets it count with a hash, not a sort)
    in_box = or_(
        and_(not_(t.c.moving), in_box_bound(t.c.position)),
        and_(t.c.moving, in_box_bound(last_position)),
    )
    cond = all_of(
        in_scope_bound(t.c.region_code, scopes),
        in_box if "box_west" in names else None,
    )
    counted = (
        select(t.c.kind, t.c.status, func.count().label("n"))
        .where(cond)
        .group_by(t.c.kind, t.c.status)
        .subquery("counted")
    )
    # by kind, then status: by_kind lists the kinds in that order whatever plan the count takes
    row = aggregate_order_by(func.json_build_array(*counted.c), counted.c.kind, counted.c.status)
    return select(cast(func.json_agg(row), Text).label("rows"))


@router.get("/devices/summary", response_model=DeviceSummary, summary="Count devices by status")
async def device_summary(
    conn: ReadDb,
    bbox: str | None = Query(
        None,
        max_length=200,
        pattern=BBOX_PATTERN,
        description="west,south,east,north (WGS 84); any size (counts only)",
    ),
    region: str | None = REGION_QUERY,
    user: Principal = Depends(require(*ANY_ROLE, reads=True)),
) -> Response:
    """Counts only (cheap at any zoom): what the map's side panel shows for the current view."""
    # A command centre over a province or the whole country zooms out that far: counts stay one
    # indexed aggregate, so no size limit (the page asked with the whole view and got a 422).
    scopes = user.visible(region)
    values = box_values(parse_bbox(bbox, max_sq_deg=360.0 * 180.0)) | scope_values(scopes)
    names, count = frozenset(values), None if scopes is None else len(scopes)
    tpl = template(("summary", names, count), lambda: _summary_statement(names, count))
    found = await fetch_one(conn, tpl, values)
    by_status = {"online": 0, "offline": 0, "unknown": 0}
    by_kind: dict[str, int] = {}
    for kind, status, n in orjson.loads(found.rows or "[]"):
        by_status[status] = by_status.get(status, 0) + n
        by_kind[kind] = by_kind.get(kind, 0) + n
    return json_answer(total=sum(by_kind.values()), **by_status, by_kind=by_kind)


@router.get("/geo/devices", response_model=FeatureCollection, summary="Devices as GeoJSON points")
def devices_geojson(
    conn: Db,
    bbox: str | None = BBOX_QUERY,
    region: str | None = REGION_QUERY,
    kind: str | None = Query(None, max_length=64),
    status: str | None = Query(None, pattern=r"^(online|offline|unknown)$"),
    moving: bool | None = Query(
        None, description="Only patrol units and trackers (true), or only fixed devices (false)"
    ),
    after: str | None = Query(
        None, pattern=r"^[0-9]{20}$", description="Cursor: ids after this one"
    ),
    page: Page = Depends(paging),
    user: Principal = Depends(require(*ANY_ROLE)),
) -> FeatureCollection:
    """Device positions (moving devices at their last reported position) in the box."""
    box = parse_bbox(bbox)
    d = schema.devices
    geom = func.coalesce(d.c.last_position, d.c.position)
    is_moving = or_(d.c.kind.in_(MOVING_KINDS), func.coalesce(d.c.sub_kind, "").in_(MOVING_KINDS))
    cond = all_of(
        in_scope(d.c.region_code, user.visible(region)),
        d.c.retired_at.is_(None),
        geom.is_not(None),
        in_box(geom, box),
        d.c.kind == kind if kind else None,
        d.c.status == status if status else None,
        (is_moving if moving else not_(is_moving)) if moving is not None else None,
        d.c.id > after if after else None,
    )
    cols = (d.c.id, d.c.name, d.c.kind, d.c.sub_kind, d.c.status, d.c.region_code, d.c.grid_id)
    more = (d.c.heading_deg, d.c.hfov_deg, d.c.range_m, d.c.last_seen)
    stmt = select(*cols, *more, func.ST_AsGeoJSON(geom, 7).label("geojson"))
    rows = conn.execute(one_page(stmt.where(cond).order_by(d.c.id), page)).mappings().all()
    return collection(rows, page, cursor_key="id")


@router.get(
    "/devices/{device_id}", response_model=DeviceOut, summary="One device", responses=NOT_FOUND
)
def get_device(
    conn: Db,
    device_id: str = ID_PATH,
    with_fov: bool = Query(True, description="Include the coverage polygon"),
    user: Principal = Depends(require(*ANY_ROLE)),
) -> BaseModel:
    """A device with its coverage polygon."""
    geojson = cast(func.ST_AsGeoJSON(schema.devices.c.fov, 7), JSON)
    fov = case((literal(with_fov), geojson), else_=None)
    stmt = select(*DEVICE_SELECT, fov.label("fov")).where(schema.devices.c.id == device_id)
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise ApiError(404, f"device {device_id} is not registered")
    if not user.may_touch(row["region_code"]):
        raise ApiError(
            403, f"device {device_id} is outside the regions assigned to {user.username!r}"
        )
    return DeviceOut(**row)


@router.post(
    "/devices/preview",
    response_model=Preview,
    summary="Preview a registration",
)
def preview_device(
    body: DeviceRegistration, conn: Db, user: Principal = Depends(require("installer"))
) -> Preview:
    """What registering would store — WGS 84 position, region and grid by containment, the coverage
    sector — and which village, intersection, key-site and grid rules it would help; nothing is saved."""
    decode(body)  # the id (type code, network digit, sub-kind) before the position
    lon, lat, region, grid = check_position(conn, body.id, body.lon, body.lat, body.crs, user)
    return preview(conn, body, lon, lat, region, grid)


@router.post(
    "/devices",
    response_model=ChangeResult,
    status_code=201,
    summary="Register a device",
    responses=CONFLICT,
)
def register(
    body: DeviceRegistration, conn: DbTx, user: Principal = Depends(require("installer"))
) -> ChangeResult:
    """Register a device by its GB/T 28181 id. The position (WGS 84, GCJ-02 or BD-09) must fall inside
    the division named by the id and inside the installer's regions; region and base grid are found by
    containment and the coverage sector from the lens. Logged in the audit log."""
    decode(body)  # the id (type code, network digit, sub-kind) before the position
    check_position(conn, body.id, body.lon, body.lat, body.crs, user)
    out = register_device(conn, body, user.username)
    _emit(
        conn,
        "x.device.registered",
        out.get("region_code"),
        {
            "id": body.id,
            "kind": out.get("kind"),
            "status": "unknown",
            "lon": out.get("lon"),
            "lat": out.get("lat"),
        },
    )
    return _result(out)


def _checked_update(
    conn: Connection, device_id: str, changes: dict, user: Principal, action: str
) -> ChangeResult:
    if not changes:
        raise unprocessable("body", "give at least one field to change")
    for name in sorted(changes):
        if changes[name] is None and name in NON_NULLABLE:
            raise unprocessable(name, "cannot be null (leave it out to keep the current value)")
    current = device_region(conn, device_id)
    user.require_region(current, "change devices")
    if {"lon", "lat"} & changes.keys():
        if not {"lon", "lat"} <= changes.keys():
            raise unprocessable("lat" if "lon" in changes else "lon", "give lon and lat together")
        check_position(
            conn,
            device_id,
            changes["lon"],
            changes["lat"],
            changes.get("crs") or "wgs84",
            user,
        )
    out = update_device(conn, device_id, changes, user.username)
    _emit(
        conn,
        "x.device.changed",
        out.get("region_code"),
        {
            "id": device_id,
            "action": out.get("action"),
            "lon": out.get("lon"),
            "lat": out.get("lat"),
        },
    )
    return _result(out)


@router.patch(
    "/devices/{device_id}",
    response_model=ChangeResult,
    summary="Change a device",
    responses={**NOT_FOUND, **CONFLICT},
)
def change_device(
    body: DeviceChanges,  # type: ignore[valid-type]
    conn: DbTx,
    device_id: str = ID_PATH,
    user: Principal = Depends(require("installer")),
) -> ChangeResult:
    """Change any registration field; a new lon/lat (in `crs`) is a move and is checked like a registration."""
    changes = body.model_dump(exclude_unset=True)
    return _checked_update(conn, device_id, changes, user, "device.update")


@router.post(
    "/devices/{device_id}/move",
    response_model=ChangeResult,
    summary="Move a device",
    responses={**NOT_FOUND, **CONFLICT},
)
def move_device(
    body: MoveIn,
    conn: DbTx,
    device_id: str = ID_PATH,
    user: Principal = Depends(require("installer")),
) -> ChangeResult:
    """Move a device (and optionally turn it): region, grid and coverage are recomputed."""
    return _checked_update(conn, device_id, body.model_dump(exclude_none=True), user, "device.move")


@router.post(
    "/devices/{device_id}/retire",
    response_model=ChangeResult,
    summary="Retire a device",
    responses={**NOT_FOUND, **CONFLICT},
)
def retire(
    conn: DbTx,
    body: RetireIn | None = None,
    device_id: str = ID_PATH,
    user: Principal = Depends(require("installer")),
) -> ChangeResult:
    """Retire a device: it stays in history, stops counting in audits and loses broker access."""
    user.require_region(device_region(conn, device_id), "retire devices")
    out = retire_device(conn, device_id, user.username)
    if body is not None and body.reason:
        record(
            conn,
            user.username,
            "device.retire_reason",
            "device",
            device_id,
            {"reason": body.reason},
        )
    _emit(conn, "x.device.retired", out.get("region_code"), {"id": device_id})
    return _result(out)


def _credentials_scope(conn: Connection, device_id: str, user: Principal, action: str) -> None:
    """404 unknown, 409 retired, 403 outside the user's regions; the access is logged (committed
    now: it stays logged when what follows fails)."""
    row = device_standing(conn, device_id)
    if row is None:
        raise ApiError(404, f"device {device_id} is not registered")
    if row.retired_at is not None:
        raise ApiError(409, f"device {device_id} is retired; it has no broker access")
    user.require_region(row.region_code, f"{action.replace('_', ' ')} device credentials")
    record(conn, user.username, f"device.credentials_{action}", "device", device_id, None)
    conn.commit()


def _credentials(request: Request, device_id: str, password: str | None) -> MqttCredentials:
    scheme, host, port = request.app.state.settings.mqtt_public_endpoint()
    return MqttCredentials(
        url=f"{scheme}://{host}:{port}",
        host=host,
        port=port,
        username=device_username(device_id),
        password=password,
        topics=device_topics(device_id),
    )


@router.get(
    "/devices/{device_id}/mqtt-credentials",
    response_model=MqttCredentials,
    summary="Device MQTT settings (no password)",
    responses={**NOT_FOUND, **CONFLICT},
)
def mqtt_credentials(
    request: Request,
    conn: DbTx,
    device_id: str = ID_PATH,
    user: Principal = Depends(require("installer")),
) -> MqttCredentials:
    """The broker address, user name and topics to configure on the device. The password is
    shown only once, when it is set: POST to this path (reading is logged)."""
    _credentials_scope(conn, device_id, user, "read")
    return _credentials(request, device_id, None)


@router.post(
    "/devices/{device_id}/mqtt-credentials",
    response_model=MqttCredentials,
    summary="Set a new device MQTT password (shown once)",
    responses={**NOT_FOUND, **CONFLICT},
)
def reset_mqtt_credentials(
    request: Request,
    conn: DbTx,
    device_id: str = ID_PATH,
    user: Principal = Depends(require("installer")),
) -> MqttCredentials:
    """Draw a new random password for the device (the old one stops working at once) and return
    it with the broker address: the only time it is shown. Logged in the audit log."""
    from ingest.broker_acl import CredentialsError, reset_device_credentials

    _credentials_scope(conn, device_id, user, "reset")
    try:
        out = reset_device_credentials(
            device_id, user.username, settings=request.app.state.settings, role="api"
        )
    except CredentialsError as exc:
        raise ApiError(409, str(exc)) from None
    return _credentials(request, device_id, out["password"])
