"""A camera's side panel: video-quality health with evidence, online history, linked alarms."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import and_, case, literal, select

from api.deps import Db, Principal, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut
from api.query import in_scope
from api.routers.alarms import ALARM_COLUMNS, FROM, OPEN_STATES, AlarmOut
from api.routers.snapshots import READERS, ReadableCamera, masked_jpeg, readable_device
from api.types import Rfc3339
from gridwatch import schema
from ingest.presence import online_periods
from vision.store import health_picture, recent_health

router = APIRouter(tags=["devices"], responses=COMMON_RESPONSES)

DEVICE_ID = Path(..., pattern=r"^[0-9]{20}$", description="20-digit GB/T 28181 device id")
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such device"}
}
HEALTH_ROWS = 200  # diagnoses read back to find when each current fault began (bounded)


class FaultNow(BaseModel):
    """A fault the latest diagnosis found, since when it has been seen without a break."""

    code: str = Field(description="vision.faults code", examples=["occlusion"])
    since: datetime = Field(description="First diagnosis of the unbroken run ending now")
    score: float | None = Field(None, description="The detector's score in the latest diagnosis")
    evidence_at: datetime | None = Field(
        None,
        description="Diagnosis whose marked picture shows it: GET .../health/evidence?at=this",
    )


class HealthCheck(BaseModel):
    """One diagnosis."""

    ts: datetime
    intact: bool
    faults: list[str]


class CameraHealth(BaseModel):
    """The camera's video-quality health: intact, or its current faults with evidence."""

    device_id: str
    checked: bool = Field(description="false: no diagnosis yet")
    checked_at: datetime | None = None
    intact: bool | None = None
    faults: list[FaultNow] = []
    recent: list[HealthCheck] = Field(
        default_factory=list, description="The last diagnoses, newest first (≤ 10)"
    )


def current_faults(rows: Sequence[Any]) -> list[FaultNow]:
    """Faults of the newest row (rows newest first: ts, faults, scores, has_image), each with
    the start of its unbroken run and the newest row of that run with a picture."""
    if not rows:
        return []
    out = []
    latest = rows[0]
    for code in latest.faults or []:
        since = latest.ts
        evidence = None
        for r in rows:
            if code not in (r.faults or []):
                break
            since = r.ts
            if evidence is None and r.has_image:
                evidence = r.ts
        score = (latest.scores or {}).get(code)
        out.append(
            FaultNow(
                code=code,
                since=since,
                score=float(score) if isinstance(score, int | float) else None,
                evidence_at=evidence,
            )
        )
    return out


@router.get(
    "/devices/{device_id}/health",
    response_model=CameraHealth,
    summary="The camera's video-quality health",
    operation_id="get_camera_health",
    responses=NOT_FOUND,
)
def camera_health(conn: Db, camera: ReadableCamera) -> CameraHealth:
    """Intact, or each current fault with since-when and the diagnosis holding its evidence."""
    device_id = camera.id
    rows = recent_health(conn, device_id, HEALTH_ROWS)
    if not rows:
        return CameraHealth(device_id=device_id, checked=False)
    return CameraHealth(
        device_id=device_id,
        checked=True,
        checked_at=rows[0].ts,
        intact=rows[0].intact,
        faults=current_faults(rows),
        recent=[HealthCheck(ts=r.ts, intact=r.intact, faults=r.faults or []) for r in rows[:10]],
    )


@router.get(
    "/devices/{device_id}/health/evidence",
    summary="A diagnosis' marked picture (privacy-masked)",
    operation_id="get_health_evidence",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": ErrorOut}},
)
def health_evidence(
    conn: Db,
    dev: ReadableCamera,
    at: Rfc3339 | None = Query(
        None, description="The diagnosis at or before this time; default the newest with a picture"
    ),
) -> Response:
    """The picture the vision worker kept with a diagnosis, masked like the snapshot."""
    device_id = dev.id
    row = health_picture(conn, device_id, at)
    if row is None:
        raise ApiError(404, f"camera {device_id} has no diagnosis picture", code="no_evidence")
    body = masked_jpeg(bytes(row.thumbnail), dev.config)
    return Response(
        body,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=300", "X-Health-At": row.ts.isoformat()},
    )


class OnlineInterval(BaseModel):
    """An online period, clipped to the window; `end` null while it lasts."""

    start: datetime
    end: datetime | None = None
    end_reason: str | None = None


class PresenceHistory(BaseModel):
    """Online periods over a window, and the share of it online (the audit's online-rate)."""

    device_id: str
    since: datetime
    until: datetime
    online_share: float | None = Field(
        None,
        description="Seconds online / seconds registered in the window (null: registered after it)",
        examples=[0.97],
    )
    intervals: list[OnlineInterval]


@router.get(
    "/devices/{device_id}/presence",
    response_model=PresenceHistory,
    summary="The device's online periods",
    operation_id="get_device_presence",
    responses=NOT_FOUND,
)
def device_presence(
    conn: Db,
    dev: ReadableCamera,
    hours: int = Query(24, ge=1, le=168, description="Window ending now"),
) -> PresenceHistory:
    """Online periods from the presence intervals the ingest worker keeps, clipped to the window."""
    device_id = dev.id
    t0, now, rows = online_periods(conn, device_id, hours)
    start = max(t0, dev.registered_at) if dev.registered_at else t0
    span = (now - start).total_seconds()
    up = sum(
        (min(r.end or now, now) - max(r.start, start)).total_seconds()
        for r in rows
        if (r.end or now) > start
    )
    return PresenceHistory(
        device_id=device_id,
        since=t0,
        until=now,
        online_share=max(0.0, min(1.0, up / span)) if span > 0 else None,
        intervals=[OnlineInterval(start=r.start, end=r.end, end_reason=r.end_reason) for r in rows],
    )


class LinkedAlarm(AlarmOut):
    """An alarm this device raised, or one it was linked to as a camera."""

    relation: Literal["own", "covers", "nearest"] = Field(
        description="own: raised by this device; covers/nearest: linked to it as a camera"
    )
    distance_m: float | None = None


@router.get(
    "/devices/{device_id}/alarms",
    response_model=list[LinkedAlarm],
    summary="Alarms of or linked to a device",
    operation_id="list_device_alarms",
    responses=NOT_FOUND,
)
def device_alarms(
    conn: Db,
    device_id: str = DEVICE_ID,
    limit: int = Query(20, ge=1, le=200),
    user: Principal = Depends(require(*READERS)),
) -> list[LinkedAlarm]:
    """Open ones first, then the newest: what the device raised and what it was linked to."""
    a, links = schema.alarms, schema.alarm_cameras
    ac = links.alias("ac")
    linked = (
        select(links.c.alarm_id)
        .where(links.c.device_id == device_id)
        .union_all(select(a.c.id).where(a.c.device_id == device_id))
    )
    relation = case((a.c.device_id == device_id, literal("own")), else_=ac.c.relation)
    stmt = (
        select(*ALARM_COLUMNS, relation.label("relation"), ac.c.distance_m)
        .select_from(FROM.outerjoin(ac, and_(ac.c.alarm_id == a.c.id, ac.c.device_id == device_id)))
        .where(a.c.id.in_(linked), in_scope(a.c.region_code, user.visible(None)))
        .order_by(a.c.state.in_(OPEN_STATES).desc(), a.c.raised_at.desc(), a.c.id.desc())
        .limit(limit)
    )
    readable_device(conn, device_id, user)
    rows = conn.execute(stmt).mappings().all()
    return [LinkedAlarm(**r) for r in rows]
