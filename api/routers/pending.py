"""Pending devices: unknown ids heard on the broker, and adopting one (= registering it)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel
from sqlalchemy import ColumnElement, false, func, select, true

from api.deps import Db, DbTx, Principal, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut, unprocessable
from api.geojson import Page, paging
from api.placement import check_position
from api.query import one_page
from api.routers.devices import ChangeResult, DeviceChanges, _emit, _result
from api.trail import record
from geo.registry import DeviceRegistration, register_device, validate_registration
from gridwatch import schema
from ingest.pending import forget_pending, lock_pending

router = APIRouter(prefix="/pending-devices", tags=["pending devices"], responses=COMMON_RESPONSES)


class PendingOut(BaseModel):
    """An unregistered id that has been talking to the broker."""

    id: str
    first_seen: datetime
    last_seen: datetime
    message_count: int
    last_topic: str | None = None
    lon: float | None = None
    lat: float | None = None
    kind: str | None = None


class PendingPage(BaseModel):
    """A page of pending devices, most recently heard first."""

    items: list[PendingOut]
    limit: int
    offset: int
    next_offset: int | None = None


def _kind(device_id: str) -> str | None:
    try:
        from hardware.kinds import kind_for_device

        return kind_for_device(device_id).name
    except ValueError:
        return None


@router.get("", response_model=PendingPage, summary="List pending devices")
def list_pending(
    conn: Db,
    page: Page = Depends(paging),
    user: Principal = Depends(require("installer", "operator", "auditor")),
) -> PendingPage:
    """Unknown ids heard on the broker; an installer sees those whose id names one of their regions."""
    pd = schema.pending_devices
    scopes = user.scopes
    named: ColumnElement[bool]
    if scopes is None:
        named = true()
    else:  # the id's first six digits are the county it names
        named = (
            func.left(pd.c.id, 6).in_(sorted({code[:6] for code in scopes})) if scopes else false()
        )
    stmt = (
        select(
            pd.c.id,
            pd.c.first_seen,
            pd.c.last_seen,
            pd.c.message_count,
            pd.c.last_topic,
            func.ST_X(pd.c.position).label("lon"),
            func.ST_Y(pd.c.position).label("lat"),
        )
        .where(named)
        .order_by(pd.c.last_seen.desc(), pd.c.id)
    )
    rows = conn.execute(one_page(stmt, page)).mappings().all()
    items = [PendingOut(**r, kind=_kind(r["id"])) for r in rows[: page.limit]]
    return PendingPage(
        items=items,
        limit=page.limit,
        offset=page.offset,
        next_offset=page.offset + page.limit if len(rows) > page.limit else None,
    )


@router.post(
    "/{device_id}/adopt",
    response_model=ChangeResult,
    status_code=201,
    summary="Adopt a pending device",
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
def adopt(
    body: DeviceChanges,  # type: ignore[valid-type]
    conn: DbTx,
    device_id: str = Path(..., pattern=r"^[0-9]{20}$"),
    user: Principal = Depends(require("installer")),
) -> ChangeResult:
    """Register a pending id with the installer's details (position defaults to the one it reported)."""
    fields = body.model_dump(exclude_unset=True)
    row = lock_pending(conn, device_id)
    if row is None:
        raise ApiError(404, f"{device_id} is not a pending device")
    if "lon" not in fields and row.lon is not None:
        fields.update(lon=row.lon, lat=row.lat, crs="wgs84")
    if "lon" not in fields or "lat" not in fields:
        raise unprocessable("lon", "this device reported no position: give lon and lat")
    reg: DeviceRegistration = validate_registration({"id": device_id, **fields})
    check_position(conn, device_id, reg.lon, reg.lat, reg.crs, user)
    out = register_device(conn, reg, user.username)
    forget_pending(conn, device_id)
    record(
        conn,
        user.username,
        "pending.adopt",
        "device",
        device_id,
        {"region_code": out.get("region_code")},
    )
    _emit(
        conn,
        "x.device.registered",
        out.get("region_code"),
        {
            "id": device_id,
            "kind": out.get("kind"),
            "status": "unknown",
            "lon": out.get("lon"),
            "lat": out.get("lat"),
        },
    )
    return _result(out)
