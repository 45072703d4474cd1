"""The operator's KPI strip for the region or map view: the audit's camera rates and open alarms."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import DateTime, Select, and_, extract, func, literal, or_, select, true

from api.deps import ANY_ROLE, Db, Principal, require
from api.errors import COMMON_RESPONSES
from api.geojson import BBOX_PATTERN, BBox, parse_bbox
from api.query import in_box, in_scope
from gridwatch import schema

router = APIRouter(tags=["devices"], responses=COMMON_RESPONSES)


@lru_cache(maxsize=1)
def camera_kinds() -> list[str]:
    """The kinds the audit counts as cameras (the default rule pack's camera_kinds)."""
    from geo.rulepack import load_rule_pack

    return list(load_rule_pack().params.camera_kinds)


# The audit's definitions (geo/audit_sql.py): networking rate = networked / registered cameras;
# online rate = seconds online / seconds registered over the window, networked cameras, from the
# presence intervals; intact rate = latest diagnosis intact / cameras with a diagnosis.
def kpi_query(
    scopes: list[str] | None, box: BBox | None, now: datetime, t0: datetime
) -> Select[Any]:
    """One row: cameras, networked, online_now, span (s), up_s, checked, intact."""
    d, p, h = schema.devices, schema.device_presence, schema.camera_health
    at_now = literal(now, DateTime(timezone=True))
    since = literal(t0, DateTime(timezone=True))
    cams = (
        select(d.c.id, d.c.networked, d.c.status, d.c.registered_at)
        .where(
            in_scope(d.c.region_code, scopes),
            d.c.retired_at.is_(None),
            d.c.position.is_not(None),
            d.c.kind.in_(camera_kinds()),
            in_box(d.c.position, box),
        )
        .cte("cams")
    )
    start = func.greatest(since, cams.c.registered_at, type_=DateTime(timezone=True))
    tot = (
        select(
            func.count().label("cameras"),
            func.count().filter(cams.c.networked).label("networked"),
            func.count()
            .filter(and_(cams.c.networked, cams.c.status == "online"))
            .label("online_now"),
            func.sum(extract("epoch", at_now - start))
            .filter(and_(cams.c.networked, cams.c.registered_at < at_now))
            .label("span"),
        )
        .select_from(cams)
        .subquery("tot")
    )
    ended = func.least(func.coalesce(p.c.ended_at, at_now), at_now)
    began = func.greatest(p.c.started_at, since, cams.c.registered_at)
    up = (
        select(func.sum(extract("epoch", ended - began)).label("s"))
        .select_from(p.join(cams, cams.c.id == p.c.device_id))
        .where(
            cams.c.networked,
            p.c.started_at < at_now,
            or_(p.c.ended_at.is_(None), p.c.ended_at > start),
        )
        .subquery("up")
    )
    latest = (
        select(h.c.intact)
        .where(h.c.device_id == cams.c.id)
        .order_by(h.c.ts.desc())
        .limit(1)
        .lateral("l")
    )
    health = (
        select(
            func.count(latest.c.intact).label("checked"),
            func.count().filter(latest.c.intact).label("intact"),
        )
        .select_from(cams.join(latest, true()))
        .where(cams.c.networked)
        .subquery("health")
    )
    return select(
        tot, func.coalesce(up.c.s, 0).label("up_s"), health.c.checked, health.c.intact
    ).select_from(tot.join(up, true()).join(health, true()))


def open_alarms_query(scopes: list[str] | None, box: BBox | None) -> Select[Any]:
    """Open alarms by severity in the scope and box."""
    a = schema.alarms
    return (
        select(a.c.severity, func.count())
        .where(
            in_scope(a.c.region_code, scopes),
            a.c.state.in_(("new", "acknowledged", "dispatched")),
            in_box(a.c.position, box),
        )
        .group_by(a.c.severity)
    )


class Kpi(BaseModel):
    """Rates for the cameras in the region / view and open alarms there (rates null: no data)."""

    cameras: int = Field(description="Registered cameras (the audit's camera kinds)")
    networked: int
    online_now: int = Field(description="Networked cameras online now")
    networking_rate: float | None = Field(None, examples=[0.98])
    online_rate: float | None = Field(
        None, description="Share of the window the networked cameras were online", examples=[0.95]
    )
    intact_rate: float | None = Field(
        None, description="Cameras whose latest diagnosis is intact / cameras diagnosed"
    )
    checked: int = Field(description="Networked cameras with a video-quality diagnosis")
    faulty: int = Field(description="Cameras whose latest diagnosis found a fault")
    open_alarms: dict[str, int] = Field(
        description="Open alarms by severity", examples=[{"1": 2, "2": 10, "3": 0, "4": 1}]
    )
    since: datetime
    until: datetime


@router.get("/devices/kpi", response_model=Kpi, summary="KPIs for the region or view")
def kpi(
    conn: Db,
    region: str | None = Query(None, pattern=r"^[0-9]{12}$", description="12-digit division code"),
    bbox: str | None = Query(
        None, max_length=200, pattern=BBOX_PATTERN, description="west,south,east,north (WGS 84)"
    ),
    hours: int = Query(24, ge=1, le=720, description="Window of the online rate, ending now"),
    user: Principal = Depends(require(*ANY_ROLE)),
) -> Kpi:
    """Online, intact and networking rates as the audit defines them, and open alarms."""
    box = parse_bbox(bbox, max_sq_deg=360.0 * 180.0)
    scopes = user.visible(region)
    now = conn.execute(select(func.now())).scalar_one()
    t0 = now - timedelta(hours=hours)
    row = conn.execute(kpi_query(scopes, box, now, t0)).one()
    sev = conn.execute(open_alarms_query(scopes, box)).all()
    span = float(row.span or 0)
    return Kpi(
        cameras=row.cameras,
        networked=row.networked,
        online_now=row.online_now,
        networking_rate=row.networked / row.cameras if row.cameras else None,
        online_rate=min(1.0, float(row.up_s) / span) if span > 0 else None,
        intact_rate=row.intact / row.checked if row.checked else None,
        checked=row.checked,
        faulty=row.checked - row.intact,
        open_alarms={str(s): 0 for s in range(1, 5)} | {str(s): n for s, n in sev},
        since=t0,
        until=now,
    )
