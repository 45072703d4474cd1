"""Alarms: filter and read (with the cameras that see them and their trail), and act on them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from api.deps import Principal, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut
from api.geojson import BBOX_QUERY, BBox, FeatureCollection, Page, collection, paging, parse_bbox
from api.scope import scope_sql
from api.trail import record
from api.types import Rfc3339
from ingest import alarms as lifecycle

router = APIRouter(tags=["alarms"], responses=COMMON_RESPONSES)

STATES = ("new", "acknowledged", "dispatched", "resolved", "false_alarm")
ALARM_ID = Path(..., ge=1, le=2**62)
READERS = ("operator", "auditor")

ALARM_COLUMNS = (
    "a.id, a.device_id, a.msg_id, a.kind, a.severity, ST_X(a.position) AS lon, ST_Y(a.position) AS lat, "
    "a.region_code, r.name AS region_name, d.name AS device_name, d.kind AS device_kind, a.raised_at, "
    "a.received_at, a.last_raised_at, a.repeat_count, a.state, a.detail, a.acknowledged_by, "
    "a.acknowledged_at, a.dispatched_by, a.dispatched_at, a.closed_by, a.closed_at, a.outside_region"
)
FROM = "FROM alarms a LEFT JOIN devices d ON d.id = a.device_id LEFT JOIN regions r ON r.code = a.region_code"


class AlarmOut(BaseModel):
    """An alarm and where it stands in its lifecycle."""

    id: int
    device_id: str
    msg_id: str
    kind: str
    severity: int = Field(description="1 most severe … 4 least")
    lon: float | None = None
    lat: float | None = None
    region_code: str | None = None
    region_name: str | None = None
    device_name: str | None = None
    device_kind: str | None = None
    raised_at: datetime
    received_at: datetime
    last_raised_at: datetime
    repeat_count: int
    state: str
    detail: Any = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    dispatched_by: str | None = None
    dispatched_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    outside_region: bool | None = Field(
        default=None,
        description="The device put the alarm at a position outside its own region (null: no "
        "position given, or the region has no boundary)",
    )


class AlarmCamera(BaseModel):
    """A camera linked to an alarm: covers its position, or is the nearest one."""

    device_id: str
    rank: int
    relation: str
    distance_m: float | None = None
    name: str | None = None
    status: str | None = None
    lon: float | None = None
    lat: float | None = None
    fov: dict[str, Any] | None = None


class AlarmStep(BaseModel):
    """One step of the trail."""

    state: str
    actor: str
    at: datetime
    note: str | None = None


class AlarmDetail(AlarmOut):
    """An alarm with its cameras (best first) and its full trail."""

    cameras: list[AlarmCamera] = []
    trail: list[AlarmStep] = []


class AlarmPage(BaseModel):
    """A page of alarms, newest first."""

    items: list[AlarmOut]
    limit: int
    offset: int
    next_offset: int | None = None
    total_open: int | None = Field(None, description="Open alarms matching the region filter")


class ActionIn(BaseModel):
    """A note for the trail."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)


def _filters(
    user: Principal,
    region: str | None,
    state: list[str] | None,
    severity_max: int | None,
    since: Rfc3339 | None,
    until: Rfc3339 | None,
    device_id: str | None,
) -> tuple[list[str], dict]:
    cond, params = scope_sql("a.region_code", user.visible(region))
    where = [cond]
    if state:
        wanted: list[str] = []
        for s in state:
            wanted += (
                ["new", "acknowledged", "dispatched"]
                if s == "open"
                else ["resolved", "false_alarm"]
                if s == "closed"
                else [s]
            )
        where.append("a.state = ANY(:states)")
        params["states"] = sorted(set(wanted))
    if severity_max is not None:
        where.append("a.severity <= :sev")
        params["sev"] = severity_max
    if since is not None:
        where.append("a.raised_at >= :since")
        params["since"] = since
    if until is not None:
        where.append("a.raised_at < :until")
        params["until"] = until
    if device_id:
        where.append("a.device_id = :dev")
        params["dev"] = device_id
    return where, params


STATE_QUERY = Query(
    None,
    description="States to include; 'open' = new+acknowledged+dispatched, 'closed' = resolved+false_alarm",
)
REGION_QUERY = Query(
    None, pattern=r"^[0-9]{12}$", description="12-digit division code; covers everything below it"
)


@router.get("/alarms", response_model=AlarmPage, summary="List alarms")
def list_alarms(
    request: Request,
    region: str | None = REGION_QUERY,
    state: list[
        Literal["new", "acknowledged", "dispatched", "resolved", "false_alarm", "open", "closed"]
    ]
    | None = STATE_QUERY,
    severity_max: int | None = Query(
        None, ge=1, le=4, description="Only alarms at least this severe (1 most)"
    ),
    since: Rfc3339 | None = Query(None, description="Raised at or after (RFC 3339)"),
    until: Rfc3339 | None = Query(None, description="Raised before (RFC 3339)"),
    device_id: str | None = Query(None, pattern=r"^[0-9]{20}$"),
    page: Page = Depends(paging),
    user: Principal = Depends(require(*READERS)),
) -> AlarmPage:
    """Alarms in the user's regions, newest first, filtered by region, state, severity and time."""
    if since and until and since > until:
        raise ApiError(422, "since must not be after until", "since")
    where, params = _filters(
        user, region, list(state) if state else None, severity_max, since, until, device_id
    )
    params.update(limit=page.limit + 1, offset=page.offset)
    with request.app.state.engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    f"SELECT {ALARM_COLUMNS} {FROM} WHERE {' AND '.join(where)} "
                    "ORDER BY a.raised_at DESC, a.id DESC LIMIT :limit OFFSET :offset"
                ),
                params,
            )
            .mappings()
            .all()
        )
        ocond, oparams = scope_sql("region_code", user.visible(region))
        total_open = conn.execute(
            text(
                f"SELECT count(*) FROM alarms WHERE state IN ('new','acknowledged','dispatched') AND {ocond}"
            ),
            oparams,
        ).scalar()
    return AlarmPage(
        items=[AlarmOut(**r) for r in rows[: page.limit]],
        limit=page.limit,
        offset=page.offset,
        next_offset=page.offset + page.limit if len(rows) > page.limit else None,
        total_open=total_open,
    )


@router.get("/geo/alarms", response_model=FeatureCollection, summary="Alarms as GeoJSON points")
def alarms_geojson(
    request: Request,
    bbox: str | None = BBOX_QUERY,
    region: str | None = REGION_QUERY,
    state: list[
        Literal["new", "acknowledged", "dispatched", "resolved", "false_alarm", "open", "closed"]
    ]
    | None = STATE_QUERY,
    severity_max: int | None = Query(None, ge=1, le=4),
    since: Rfc3339 | None = Query(None, description="Raised at or after (RFC 3339)"),
    until: Rfc3339 | None = Query(None, description="Raised before (RFC 3339)"),
    page: Page = Depends(paging),
    user: Principal = Depends(require(*READERS)),
) -> FeatureCollection:
    """Alarm positions in the box, newest first."""
    box = parse_bbox(bbox)
    where, params = _filters(
        user, region, list(state) if state else None, severity_max, since, until, None
    )
    where.append("a.position IS NOT NULL")
    if box is not None:
        where.append(f"a.position && {BBox.SQL}")
        params.update(box.params())
    params.update(limit=page.limit + 1, offset=page.offset)
    with request.app.state.engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    "SELECT a.id, a.device_id, a.kind, a.severity, a.state, a.region_code, a.raised_at, "
                    f"a.repeat_count, ST_AsGeoJSON(a.position, 7) AS geojson {FROM} WHERE {' AND '.join(where)} "
                    "ORDER BY a.raised_at DESC, a.id DESC LIMIT :limit OFFSET :offset"
                ),
                params,
            )
            .mappings()
            .all()
        )
    return collection(list(rows), page)


def _detail(conn, alarm_id: int, user: Principal) -> AlarmDetail:
    row = (
        conn.execute(text(f"SELECT {ALARM_COLUMNS} {FROM} WHERE a.id = :id"), {"id": alarm_id})
        .mappings()
        .first()
    )
    if row is None:
        raise ApiError(404, f"alarm {alarm_id} does not exist")
    if not user.may_touch(row["region_code"]):
        raise ApiError(
            403, f"alarm {alarm_id} is outside the regions assigned to {user.username!r}"
        )
    cams = (
        conn.execute(
            text(
                "SELECT c.device_id, c.rank, c.relation, c.distance_m, d.name, d.status, "
                "ST_X(d.position) AS lon, ST_Y(d.position) AS lat, ST_AsGeoJSON(d.fov, 7)::json AS fov "
                "FROM alarm_cameras c JOIN devices d ON d.id = c.device_id WHERE c.alarm_id = :id ORDER BY c.rank"
            ),
            {"id": alarm_id},
        )
        .mappings()
        .all()
    )
    trail = lifecycle.history(conn, alarm_id)
    return AlarmDetail(
        **row, cameras=[AlarmCamera(**c) for c in cams], trail=[AlarmStep(**t) for t in trail]
    )


@router.get(
    "/alarms/{alarm_id}",
    response_model=AlarmDetail,
    summary="One alarm with its cameras and trail",
    responses={404: {"model": ErrorOut}},
)
def get_alarm(
    request: Request, alarm_id: int = ALARM_ID, user: Principal = Depends(require(*READERS))
) -> AlarmDetail:
    """The alarm, the cameras that cover its position (best first, else the nearest) and every step taken."""
    with request.app.state.engine.connect() as conn:
        return _detail(conn, alarm_id, user)


ACTIONS = {
    "acknowledge": (lifecycle.acknowledge, "alarm.acknowledge"),
    "dispatch": (lifecycle.dispatch, "alarm.dispatch"),
    "resolve": (lifecycle.resolve, "alarm.resolve"),
    "false-alarm": (lifecycle.mark_false, "alarm.false_alarm"),
}


def _act(
    request: Request, alarm_id: int, action: str, body: ActionIn | None, user: Principal
) -> AlarmDetail:
    func, audit_action = ACTIONS[action]
    note = body.note if body else None
    with request.app.state.engine.begin() as conn:
        region = conn.execute(
            text("SELECT region_code FROM alarms WHERE id = :id"), {"id": alarm_id}
        ).first()
        if region is None:
            raise ApiError(404, f"alarm {alarm_id} does not exist")
        if not user.may_touch(region.region_code):
            raise ApiError(
                403, f"alarm {alarm_id} is outside the regions assigned to {user.username!r}"
            )
        try:
            result = func(conn, alarm_id, user.username, note)
        except lifecycle.AlarmNotFound as exc:
            raise ApiError(404, str(exc)) from None
        except lifecycle.AlarmTransitionError as exc:
            raise ApiError(409, str(exc)) from None
        record(
            conn,
            user.username,
            audit_action,
            "alarm",
            str(alarm_id),
            {"from": result.get("previous_state"), "to": result.get("state"), "note": note},
        )
    with request.app.state.engine.connect() as conn:
        return _detail(conn, alarm_id, user)


def _route(action: str, doc: str):
    def handler(
        request: Request,
        body: ActionIn | None = None,
        alarm_id: int = ALARM_ID,
        user: Principal = Depends(require("operator")),
    ) -> AlarmDetail:
        return _act(request, alarm_id, action, body, user)

    handler.__doc__ = doc
    handler.__name__ = f"alarm_{action.replace('-', '_')}"
    router.add_api_route(
        f"/alarms/{{alarm_id}}/{action}",
        handler,
        methods=["POST"],
        response_model=AlarmDetail,
        summary=f"{action.replace('-', ' ').capitalize()} an alarm",
        responses={
            404: {"model": ErrorOut},
            409: {"model": ErrorOut, "description": "not allowed from the current state"},
        },
    )


_route("acknowledge", "new -> acknowledged, by the signed-in operator (logged with who and when).")
_route("dispatch", "acknowledged -> dispatched: someone is sent.")
_route("resolve", "acknowledged or dispatched -> resolved.")
_route("false-alarm", "acknowledged or dispatched -> false alarm.")
