"""Pending devices: unknown ids heard on the broker, and adopting one (= registering it)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import Principal, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut, unprocessable
from api.geojson import Page, paging
from api.placement import check_position
from api.routers.devices import ChangeResult, DeviceChanges, _emit, _result
from api.trail import record
from geo.registry import DeviceRegistration, register_device, validate_registration

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
    request: Request,
    page: Page = Depends(paging),
    user: Principal = Depends(require("installer", "operator", "auditor")),
) -> PendingPage:
    """Unknown ids heard on the broker; an installer sees those whose id names one of their regions."""
    params = {"limit": page.limit + 1, "offset": page.offset}
    where = "TRUE"
    scopes = user.scopes
    if scopes is not None:
        if not scopes:
            where = "FALSE"
        else:
            parts = []
            for i, code in enumerate(scopes):
                parts.append(f"left(id, 6) = :p{i}")
                params[f"p{i}"] = code[:6]
            where = "(" + " OR ".join(parts) + ")"
    with request.app.state.engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    "SELECT id, first_seen, last_seen, message_count, last_topic, ST_X(position) AS lon, "
                    f"ST_Y(position) AS lat FROM pending_devices WHERE {where} "
                    "ORDER BY last_seen DESC, id LIMIT :limit OFFSET :offset"
                ),
                params,
            )
            .mappings()
            .all()
        )
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
    request: Request,
    device_id: str = Path(..., pattern=r"^[0-9]{20}$"),
    user: Principal = Depends(require("installer")),
) -> ChangeResult:
    """Register a pending id with the installer's details (position defaults to the one it reported)."""
    fields = body.model_dump(exclude_unset=True)
    with request.app.state.engine.begin() as conn:
        row = conn.execute(
            text(
                "SELECT ST_X(position) AS lon, ST_Y(position) AS lat FROM pending_devices "
                "WHERE id = :id FOR UPDATE"
            ),
            {"id": device_id},
        ).first()
        if row is None:
            raise ApiError(404, f"{device_id} is not a pending device")
        if "lon" not in fields and row.lon is not None:
            fields.update(lon=row.lon, lat=row.lat, crs="wgs84")
        if "lon" not in fields or "lat" not in fields:
            raise unprocessable("lon", "this device reported no position: give lon and lat")
        reg: DeviceRegistration = validate_registration({"id": device_id, **fields})
        check_position(conn, device_id, reg.lon, reg.lat, reg.crs, user)
        out = register_device(conn, reg, user.username)
        conn.execute(text("DELETE FROM pending_devices WHERE id = :id"), {"id": device_id})
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
