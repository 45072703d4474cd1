"""The operator's KPI strip for the region or map view: the audit's camera rates and open alarms."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from api.deps import ANY_ROLE, Principal, require
from api.errors import COMMON_RESPONSES
from api.geojson import BBOX_PATTERN, BBox, parse_bbox
from api.scope import scope_sql

router = APIRouter(tags=["devices"], responses=COMMON_RESPONSES)


@lru_cache(maxsize=1)
def camera_kinds() -> list[str]:
    """The kinds the audit counts as cameras (the default rule pack's camera_kinds)."""
    from geo.rulepack import load_rule_pack

    return list(load_rule_pack().params.camera_kinds)


# The audit's definitions (geo/audit_sql.py): networking rate = networked / registered cameras;
# online rate = seconds online / seconds registered over the window, networked cameras, from the
# presence intervals; intact rate = latest diagnosis intact / cameras with a diagnosis.
KPI_SQL = """
WITH cams AS (
  SELECT d.id, d.networked, d.status, d.registered_at FROM devices d
  WHERE {where}
), tot AS (
  SELECT count(*) AS cameras, count(*) FILTER (WHERE networked) AS networked,
         count(*) FILTER (WHERE networked AND status = 'online') AS online_now,
         sum(extract(epoch FROM :now - greatest(:t0, registered_at)))
           FILTER (WHERE networked AND registered_at < :now) AS span
  FROM cams
), up AS (
  SELECT sum(extract(epoch FROM least(coalesce(p.ended_at, :now), :now)
                                - greatest(p.started_at, :t0, c.registered_at))) AS s
  FROM device_presence p JOIN cams c ON c.id = p.device_id
  WHERE c.networked AND p.started_at < :now
    AND (p.ended_at IS NULL OR p.ended_at > greatest(:t0, c.registered_at))
), health AS (
  SELECT count(l.intact) AS checked, count(*) FILTER (WHERE l.intact) AS intact
  FROM cams c CROSS JOIN LATERAL (
    SELECT h.intact FROM camera_health h WHERE h.device_id = c.id ORDER BY h.ts DESC LIMIT 1
  ) l WHERE c.networked
)
SELECT tot.*, coalesce(up.s, 0) AS up_s, health.checked, health.intact FROM tot, up, health
"""


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
    request: Request,
    region: str | None = Query(None, pattern=r"^[0-9]{12}$", description="12-digit division code"),
    bbox: str | None = Query(
        None, max_length=200, pattern=BBOX_PATTERN, description="west,south,east,north (WGS 84)"
    ),
    hours: int = Query(24, ge=1, le=720, description="Window of the online rate, ending now"),
    user: Principal = Depends(require(*ANY_ROLE)),
) -> Kpi:
    """Online, intact and networking rates as the audit defines them, and open alarms."""
    box = parse_bbox(bbox, max_sq_deg=360.0 * 180.0)
    cond, scope = scope_sql("d.region_code", user.visible(region))
    params: dict[str, Any] = dict(scope)
    where = [cond, "d.retired_at IS NULL", "d.position IS NOT NULL", "d.kind = ANY(:kinds)"]
    params["kinds"] = camera_kinds()
    acond, ascope = scope_sql("a.region_code", user.visible(region))
    aparams: dict[str, Any] = dict(ascope)
    awhere = [acond, "a.state IN ('new', 'acknowledged', 'dispatched')"]
    if box is not None:
        where.append(f"d.position && {BBox.SQL}")
        awhere.append(f"a.position && {BBox.SQL}")
        params.update(box.params())
        aparams.update(box.params())
    with request.app.state.engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
        t0 = now - timedelta(hours=hours)
        row = conn.execute(
            text(KPI_SQL.format(where=" AND ".join(where))), {**params, "now": now, "t0": t0}
        ).one()
        sev = conn.execute(
            text(
                f"SELECT a.severity, count(*) FROM alarms a WHERE {' AND '.join(awhere)} "
                "GROUP BY a.severity"
            ),
            aparams,
        ).all()
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
