"""Alarms: filter and read (with the cameras that see them and their trail), and act on them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from api.deps import Db, DbTx, Principal, ReadDb, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut
from api.geojson import BBOX_QUERY, FeatureCollection, Page, collection, paging, parse_bbox
from api.query import (
    FROM_HUB,
    all_of,
    cast_from,
    fetch_one,
    from_hub,
    in_box,
    in_scope_bound,
    json_columns,
    json_page,
    one_page,
    page_answer,
    page_values,
    scope_values,
    template,
)
from api.trail import record
from api.types import Rfc3339
from geo.coverage import LensInput, covering_preset, preset_sectors
from gridwatch import schema
from ingest import alarms as lifecycle

router = APIRouter(tags=["alarms"], responses=COMMON_RESPONSES)

STATES = ("new", "acknowledged", "dispatched", "resolved", "false_alarm")
ALARM_ID = Path(..., ge=1, le=2**62)
READERS = ("operator", "auditor")

OPEN_STATES = ("new", "acknowledged", "dispatched")
CLOSED_STATES = ("resolved", "false_alarm")
_a, _d = schema.alarms, schema.devices
# the alarm's region is the deepest one holding it: a village (level 5) under its township (4)
_r, _p = schema.regions.alias("r"), schema.regions.alias("p")
FROM = (
    _a.outerjoin(_d, _d.c.id == _a.c.device_id)
    .outerjoin(_r, _r.c.code == _a.c.region_code)
    .outerjoin(_p, _p.c.code == _r.c.parent_code)
)
_PLAIN = (
    "id",
    "device_id",
    "msg_id",
    "kind",
    "severity",
    "region_code",
    "raised_at",
    "received_at",
    "last_raised_at",
    "repeat_count",
    "state",
    "detail",
    "acknowledged_by",
    "acknowledged_at",
    "dispatched_by",
    "dispatched_at",
    "closed_by",
    "closed_at",
    "outside_region",
)
ALARM_COLUMNS = (
    *(_a.c[name] for name in _PLAIN),
    func.ST_X(_a.c.position).label("lon"),
    func.ST_Y(_a.c.position).label("lat"),
    _r.c.name.label("region_name"),
    _d.c.name.label("device_name"),
    _d.c.kind.label("device_kind"),
    case((_r.c.level == 5, _r.c.name)).label("village_name"),
    case((_r.c.level == 5, _p.c.name), (_r.c.level == 4, _r.c.name)).label("township_name"),
    from_hub(_a.c.origin),
)
ORDERS = {
    "severity": (_a.c.severity, _a.c.raised_at, _a.c.id),
    "newest": (_a.c.raised_at.desc(), _a.c.id.desc()),
    "oldest": (_a.c.raised_at, _a.c.id),
    "closed": (_a.c.closed_at.desc().nulls_last(), _a.c.id.desc()),
}
Order = Literal["severity", "newest", "oldest", "closed"]
KIND_RE = r"^[a-z][a-z0-9_.:-]{0,63}$"


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
    village_name: str | None = Field(None, description="Administrative village holding the alarm")
    township_name: str | None = Field(None, description="Township (or street) holding the alarm")
    from_hub: str | None = FROM_HUB


class PresetSuggestion(BaseModel):
    """The PTZ preset that brings the alarm's spot into view."""

    number: int = Field(
        description="The preset's place in the camera's list as registered (1 = first)",
        examples=[3],
    )
    heading_deg: float = Field(description="Where the preset looks, degrees from north")
    focal_mm: float | None = Field(None, description="The preset's zoom (focal length)")


class AlarmCamera(BaseModel):
    """A camera linked to an alarm: its sector covers the position now, or it is only a near one."""

    device_id: str
    rank: int
    relation: Literal["covers", "nearest"] = Field(
        description="covers: the position lies inside the camera's sector now; nearest: it does not"
    )
    distance_m: float | None = Field(None, description="Camera to alarm, metres", examples=[112.5])
    bearing_deg: float | None = Field(
        None, description="Direction from the camera to the alarm, degrees from north"
    )
    faces: bool | None = Field(
        None,
        description="The camera's heading points at the alarm (within half its field of view), "
        "whether or not it reaches; null when the heading is unknown",
    )
    name: str | None = None
    status: str | None = None
    lon: float | None = None
    lat: float | None = None
    fov: dict[str, Any] | None = None
    ptz: bool = False
    preset: PresetSuggestion | None = Field(
        None,
        description="For a PTZ camera with presets: the one whose sector holds the spot (the "
        "most central if several); null when none reaches it",
    )


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


class AlarmCounts(BaseModel):
    """How many alarms match the filters, by state and by severity (counted by the server)."""

    total: int = Field(description="Alarms matching every filter", examples=[209])
    state: dict[str, int] = Field(
        description="Matching alarms per state", examples=[{"new": 180, "acknowledged": 29}]
    )
    severity: dict[str, int] = Field(
        description="Matching alarms per severity (1 most severe)", examples=[{"1": 9, "2": 200}]
    )


class AlarmPage(BaseModel):
    """A page of alarms in the asked order (default: most severe first, then oldest first)."""

    items: list[AlarmOut]
    limit: int
    offset: int
    next_offset: int | None = None
    total_open: int | None = Field(None, description="Open alarms matching the region filter")
    counts: AlarmCounts | None = Field(
        None, description="Counts over every matching alarm (not just this page)"
    )


class ActionIn(BaseModel):
    """A note for the trail."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)


def _like(text_: str) -> str:
    """A LIKE pattern matching `text_` literally (its % and _ escaped)."""
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filter_values(
    user: Principal,
    region: str | None,
    state: list[str] | None,
    severity_max: int | None,
    since: Rfc3339 | None,
    until: Rfc3339 | None,
    device_id: str | None,
    severity: list[int] | None = None,
    kind: list[str] | None = None,
    q: str | None = None,
) -> tuple[dict[str, Any], int | None]:
    """The values of an alarm listing's filters by parameter name (those given only), and how
    many scopes the user's regions make (None: everywhere): the shape of `_where`."""
    wanted: list[str] = []
    for st in state or ():
        wanted += (
            list(OPEN_STATES) if st == "open" else list(CLOSED_STATES) if st == "closed" else [st]
        )
    scopes = user.visible(region)
    given = {
        "states": sorted(set(wanted)) or None,
        "severity_max": severity_max,
        "severities": sorted(set(severity)) if severity else None,
        "kinds": sorted(set(kind)) if kind else None,
        "q_prefix": _like(q) + "%" if q else None,  # device code (prefix)
        "q_anywhere": "%" + _like(q) + "%" if q else None,  # device, village or township name
        "since": since,
        "until": until,
        "device_id": device_id or None,
    }
    values = {k: v for k, v in given.items() if v is not None} | scope_values(scopes)
    return values, None if scopes is None else len(scopes)


def _where(names: frozenset[str], scopes: int | None) -> ColumnElement[bool]:
    """The condition of an alarm listing with the filters `names` as parameters (_filter_values)."""
    search = None
    if "q_prefix" in names:
        anywhere: Any = bindparam("q_anywhere")
        search = or_(
            _a.c.device_id.like(bindparam("q_prefix")),
            _d.c.name.ilike(anywhere),
            _r.c.name.ilike(anywhere),
            _p.c.name.ilike(anywhere),
        )
    given = names.__contains__
    return all_of(
        in_scope_bound(_a.c.region_code, scopes),
        _a.c.state == any_(bindparam("states")) if given("states") else None,
        _a.c.severity <= bindparam("severity_max") if given("severity_max") else None,
        _a.c.severity == any_(bindparam("severities")) if given("severities") else None,
        _a.c.kind == any_(bindparam("kinds")) if given("kinds") else None,
        search,
        _a.c.raised_at >= bindparam("since") if given("since") else None,
        _a.c.raised_at < bindparam("until") if given("until") else None,
        _a.c.device_id == bindparam("device_id") if given("device_id") else None,
    )


def _filters(*args: Any, **kwargs: Any) -> ColumnElement[bool]:
    """The condition of an alarm listing (the arguments of _filter_values) with its values bound."""
    values, scopes = _filter_values(*args, **kwargs)
    return _where(frozenset(values), scopes).params(values)


STATE_QUERY = Query(
    None,
    description="States to include; 'open' = new+acknowledged+dispatched, 'closed' = resolved+false_alarm",
)
REGION_QUERY = Query(
    None, pattern=r"^[0-9]{12}$", description="12-digit division code; covers everything below it"
)


StateFilter = list[
    Literal["new", "acknowledged", "dispatched", "resolved", "false_alarm", "open", "closed"]
]


class AlarmQuery(BaseModel):
    """The filters every alarm listing takes (list, export)."""

    region: str | None
    state: list[str] | None
    severity_max: int | None
    severity: list[int] | None
    kind: list[str] | None
    q: str | None
    since: datetime | None
    until: datetime | None
    device_id: str | None

    def where(self, user: Principal) -> ColumnElement[bool]:
        """The condition with its values bound."""
        values, scopes = self.values(user)
        return _where(frozenset(values), scopes).params(values)

    def values(self, user: Principal) -> tuple[dict[str, Any], int | None]:
        """The filters' values by parameter name and the user's scope count (_filter_values)."""
        if self.since and self.until and self.since > self.until:
            raise ApiError(422, "since must not be after until", "since")
        return _filter_values(
            user,
            self.region,
            self.state,
            self.severity_max,
            self.since,
            self.until,
            self.device_id,
            self.severity,
            self.kind,
            self.q,
        )


async def alarm_query(
    region: str | None = REGION_QUERY,
    state: StateFilter | None = STATE_QUERY,
    severity_max: int | None = Query(
        None, ge=1, le=4, description="Only alarms at least this severe (1 most)"
    ),
    severity: list[int] | None = Query(
        None, description="Only these severities (repeatable)", examples=[[1, 2]]
    ),
    kind: list[Annotated[str, StringConstraints(pattern=KIND_RE)]] | None = Query(
        None, description="Only these alarm kinds (repeatable)", examples=[["intrusion", "smoke"]]
    ),
    q: str | None = Query(
        None,
        min_length=1,
        max_length=64,
        description="Search: device code (prefix), device name, village or township name",
        examples=["东村"],
    ),
    since: Rfc3339 | None = Query(None, description="Raised at or after (RFC 3339)"),
    until: Rfc3339 | None = Query(None, description="Raised before (RFC 3339)"),
    device_id: str | None = Query(None, pattern=r"^[0-9]{20}$"),
) -> AlarmQuery:
    if severity and any(not 1 <= s <= 4 for s in severity):
        raise ApiError(422, "severity must be 1, 2, 3 or 4", "severity")
    return AlarmQuery(
        region=region,
        state=list(state) if state else None,
        severity_max=severity_max,
        severity=severity,
        kind=kind,
        q=q.strip() or None if q else None,
        since=since,
        until=until,
        device_id=device_id,
    )


def _count_rows(where: ColumnElement[bool]) -> Select[Any]:
    """(state, severity, n) over every alarm matching `where`."""
    return (
        select(_a.c.state, _a.c.severity, func.count().label("n"))
        .select_from(FROM)
        .where(where)
        .group_by(_a.c.state, _a.c.severity)
    )


# the filters alarm_tally (migration 0016) answers: region scope, state and severity
TALLIED = frozenset({"states", "severity_max", "severities"})


def tallied(names: frozenset[str]) -> bool:
    """True when alarm_tally can count a listing with the filters `names` (_filter_values)."""
    return all(n in TALLIED or n.startswith("scope_") for n in names)


def _tally_rows(names: frozenset[str], scopes: int | None) -> Select[Any]:
    """(state, severity, n) as _count_rows counts them, summed from alarm_tally's few rows per
    region (kept by triggers; the cost does not grow with the alarms counted). Only for
    filters that are tallied(names)."""
    t = schema.alarm_tally
    given = names.__contains__
    n = cast(func.sum(t.c.n), BigInteger)
    return (
        select(t.c.state, t.c.severity, n.label("n"))
        .where(
            all_of(
                in_scope_bound(t.c.region_code, scopes),
                t.c.state == any_(bindparam("states")) if given("states") else None,
                t.c.severity <= bindparam("severity_max") if given("severity_max") else None,
                t.c.severity == any_(bindparam("severities")) if given("severities") else None,
            )
        )
        .group_by(t.c.state, t.c.severity)
        .having(func.sum(t.c.n) != 0)
    )


def _counts(rows: Iterable[Sequence[Any]]) -> AlarmCounts:
    """AlarmCounts from (state, severity, n) rows."""
    by_state: dict[str, int] = {}
    by_sev: dict[str, int] = {}
    for st, sev, n in rows:
        by_state[st] = by_state.get(st, 0) + n
        by_sev[str(sev)] = by_sev.get(str(sev), 0) + n
    return AlarmCounts(total=sum(by_state.values()), state=by_state, severity=by_sev)


def _count_by_scan(names: frozenset[str], scopes: int | None) -> Select[Any]:
    """(state, severity, n) over every alarm matching the filters `names`."""
    return _count_rows(_where(names, scopes))


def _list_statement(order: str, names: frozenset[str], scopes: int | None) -> Select[Any]:
    """GET /alarms in one statement: the page as JSON, the counts and the open total."""
    stmt = (
        select(*json_columns(ALARM_COLUMNS))
        .select_from(FROM)
        .where(_where(names, scopes))
        .order_by(*ORDERS[order])
    )
    if "q_prefix" not in names:
        # filters and order read the alarm alone: take the page's alarms first and join only
        # those to their device and places (else every matching alarm is joined, then sorted)
        paged = (
            select(_a)
            .where(_where(names, scopes))
            .order_by(*ORDERS[order])
            .limit(bindparam("page_fetch"))
            .offset(bindparam("page_offset"))
            .subquery("alarms_page")
        )
        stmt = cast_from(stmt, _a, paged)
        page = json_page(stmt, paged=True)
    else:  # the search reads the device's, village's and township's names
        page = json_page(stmt)
    # the counts from alarm_tally when it answers the filters, else counted on the alarms
    count_rows = _tally_rows if tallied(names) else _count_by_scan
    counted = count_rows(names, scopes).subquery("counted")
    counts = select(cast(func.json_agg(func.json_build_array(*counted.c)), Text))
    t = schema.alarm_tally
    open_states = any_(
        bindparam("open_states", list(OPEN_STATES))
    )  # in_() would expand per request
    still_open = and_(t.c.state == open_states, in_scope_bound(t.c.region_code, scopes))
    total_open = select(func.coalesce(cast(func.sum(t.c.n), BigInteger), 0)).where(still_open)
    return page.add_columns(
        counts.scalar_subquery().label("counts"), total_open.scalar_subquery().label("total_open")
    )


@router.get("/alarms", response_model=AlarmPage, summary="List alarms", operation_id="list_alarms")
async def list_alarms(
    conn: ReadDb,
    query: AlarmQuery = Depends(alarm_query),
    order: Order = Query(
        "severity",
        description="severity: most severe first, then oldest first (the queue); "
        "newest / oldest by raise time; closed: most recently closed first (history)",
    ),
    page: Page = Depends(paging),
    user: Principal = Depends(require(*READERS, reads=True)),
) -> Response:
    """Alarms in the user's regions, filtered, paged, with the server's counts by state and severity."""
    values, scopes = query.values(user)
    names = frozenset(values)
    tpl = template(("alarms", order, names, scopes), lambda: _list_statement(order, names, scopes))
    found = await fetch_one(conn, tpl, values | page_values(page))
    return page_answer(
        found,
        page,
        total_open=found.total_open,
        counts=_counts(orjson.loads(found.counts or "[]")).model_dump(),
    )


EXPORT_LIMIT = 100_000


@router.get(
    "/alarms/export",
    summary="Download alarms as CSV or XLSX",
    operation_id="export_alarms",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/csv": {},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            },
            "description": "the matching alarms with their trail, one row per alarm",
        }
    },
)
def export_alarms(
    conn: Db,
    query: AlarmQuery = Depends(alarm_query),
    format: Literal["csv", "xlsx"] = Query("csv", description="csv or xlsx"),
    order: Order = Query("closed", description="as for the list; default most recently closed"),
    user: Principal = Depends(require(*READERS)),  # a plain link downloads (session cookie)
) -> Response:
    """Every matching alarm (at most 100,000) with who did what and when: for the shift's history."""
    from api.alarm_export import COLUMNS, to_csv, to_xlsx

    e = schema.alarm_events
    step = (
        e.c.state
        + " "
        + e.c.actor
        + " "
        + func.to_char(func.timezone("UTC", e.c.at), 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        + func.coalesce(literal(": ") + e.c.note, "")
    )
    trail = (
        select(func.string_agg(step, aggregate_order_by(literal(" | "), e.c.at, e.c.id)))
        .where(e.c.alarm_id == _a.c.id)
        .scalar_subquery()
    )
    stmt = (
        select(*ALARM_COLUMNS, trail.label("trail"))
        .select_from(FROM)
        .where(query.where(user))
        .order_by(*ORDERS[order])
        .limit(EXPORT_LIMIT)
    )
    rows = conn.execute(stmt).mappings().all()
    records = [[r.get(c) for c in COLUMNS] for r in rows]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if format == "xlsx":
        body = to_xlsx(records)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        body = to_csv(records)
        media = "text/csv; charset=utf-8"
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="alarms-{stamp}.{format}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/geo/alarms", response_model=FeatureCollection, summary="Alarms as GeoJSON points")
def alarms_geojson(
    conn: Db,
    bbox: str | None = BBOX_QUERY,
    region: str | None = REGION_QUERY,
    state: StateFilter | None = STATE_QUERY,
    severity_max: int | None = Query(None, ge=1, le=4),
    since: Rfc3339 | None = Query(None, description="Raised at or after (RFC 3339)"),
    until: Rfc3339 | None = Query(None, description="Raised before (RFC 3339)"),
    page: Page = Depends(paging),
    user: Principal = Depends(require(*READERS)),
) -> FeatureCollection:
    """Alarm positions in the box, newest first."""
    box = parse_bbox(bbox)
    where = and_(
        _filters(user, region, list(state) if state else None, severity_max, since, until, None),
        _a.c.position.is_not(None),
        in_box(_a.c.position, box),
    )
    cols = (_a.c.id, _a.c.device_id, _a.c.kind, _a.c.severity, _a.c.state, _a.c.region_code)
    geojson = func.ST_AsGeoJSON(_a.c.position, 7).label("geojson")
    stmt = (
        select(*cols, _a.c.raised_at, _a.c.repeat_count, geojson)
        .select_from(FROM)
        .where(where)
        .order_by(_a.c.raised_at.desc(), _a.c.id.desc())
    )
    rows = conn.execute(one_page(stmt, page)).mappings().all()
    return collection(rows, page)


def faces(bearing: float | None, heading: float | None, hfov: float | None) -> bool | None:
    """True when `bearing` lies within half the field of view either side of `heading`."""
    if bearing is None or heading is None:
        return None
    if hfov is not None and hfov >= 360:
        return True
    half = (hfov or 60.0) / 2
    diff = abs((bearing - heading + 180) % 360 - 180)
    return diff <= half


def suggest_preset(cam: Any) -> PresetSuggestion | None:
    """The preset of a PTZ camera (a row with its lens, presets, bearing and distance to the
    alarm) that sees the spot, by the same optics as its coverage; None if none does or the
    stored lens cannot be read."""
    stored = cam["presets"]
    if not cam["ptz"] or not isinstance(stored, list) or not stored:
        return None
    if cam["bearing_deg"] is None or cam["distance_m"] is None:
        return None
    try:
        given = [(float(p["heading_deg"]), p.get("focal_mm")) for p in stored]
        lens = LensInput(
            focal_mm=cam["focal_mm"],
            focal_max_mm=cam["focal_max_mm"],
            sensor_format=cam["sensor_format"],
            resolution_w=cam["resolution_w"],
            resolution_h=cam["resolution_h"],
            ptz=True,
            presets=tuple(given),
        )
        number = covering_preset(preset_sectors(lens), cam["bearing_deg"], cam["distance_m"])
    except (ValueError, TypeError, KeyError):  # a lens the optics refuse: no suggestion
        return None
    if number is None:
        return None
    heading, focal = given[number - 1]
    return PresetSuggestion(number=number, heading_deg=heading, focal_mm=focal)


def _detail(conn, alarm_id: int, user: Principal) -> AlarmDetail:
    row = (
        conn.execute(select(*ALARM_COLUMNS).select_from(FROM).where(_a.c.id == alarm_id))
        .mappings()
        .first()
    )
    if row is None:
        raise ApiError(404, f"alarm {alarm_id} does not exist", code="alarm_not_found")
    if not user.may_touch(row["region_code"]):
        raise ApiError(
            403,
            f"alarm {alarm_id} is outside the regions assigned to {user.username!r}",
            code="alarm_outside_region",
        )
    # "covers" is decided now, by the camera's current sector; the rest are only the nearest
    cams = lifecycle.alarm_cameras(conn, alarm_id)
    cameras = sorted(
        (
            AlarmCamera(
                **{k: v for k, v in c.items() if k != "presets"},
                faces=faces(c["bearing_deg"], c["heading_deg"], c["hfov_deg"]),
                preset=suggest_preset(c),
            )
            for c in cams
            # an alarm may lie next to another region's camera: only those the reader may see
            if user.may_touch(c["region_code"])
        ),
        key=lambda c: (c.relation != "covers", c.distance_m if c.distance_m is not None else 1e9),
    )
    trail = lifecycle.history(conn, alarm_id)
    return AlarmDetail(**row, cameras=cameras, trail=[AlarmStep(**t) for t in trail])


@router.get(
    "/alarms/{alarm_id}",
    response_model=AlarmDetail,
    summary="One alarm with its cameras and trail",
    responses={404: {"model": ErrorOut}},
)
def get_alarm(
    conn: Db, alarm_id: int = ALARM_ID, user: Principal = Depends(require(*READERS))
) -> AlarmDetail:
    """The alarm, the cameras that cover its position (best first, else the nearest) and every step taken."""
    return _detail(conn, alarm_id, user)


ACTIONS = {
    "acknowledge": (lifecycle.acknowledge, "alarm.acknowledge"),
    "dispatch": (lifecycle.dispatch, "alarm.dispatch"),
    "resolve": (lifecycle.resolve, "alarm.resolve"),
    "false-alarm": (lifecycle.mark_false, "alarm.false_alarm"),
}


def _act(
    request: Request,
    conn: Connection,
    alarm_id: int,
    action: str,
    body: ActionIn | None,
    user: Principal,
) -> AlarmDetail | Response:
    func, audit_action = ACTIONS[action]
    note = body.note if body else None
    region = lifecycle.alarm_standings(conn, [alarm_id]).get(alarm_id)
    if region is None:
        raise ApiError(404, f"alarm {alarm_id} does not exist", code="alarm_not_found")
    if not user.may_touch(region.region_code):
        raise ApiError(
            403,
            f"alarm {alarm_id} is outside the regions assigned to {user.username!r}",
            code="alarm_outside_region",
        )
    if region.elsewhere:
        return _send_down(request, conn, alarm_id, action, region.origin, note, user)
    try:
        result = func(conn, alarm_id, user.username, note)
    except lifecycle.AlarmNotFound as exc:
        raise ApiError(404, str(exc), code="alarm_not_found") from None
    except lifecycle.AlarmTransitionError as exc:
        raise ApiError(409, str(exc), code="alarm_bad_transition") from None
    record(
        conn,
        user.username,
        audit_action,
        "alarm",
        str(alarm_id),
        {"from": result.get("previous_state"), "to": result.get("state"), "note": note},
    )
    return _detail(conn, alarm_id, user)  # in the same transaction: the step just taken


TARGET = {
    "acknowledge": "acknowledged",
    "dispatch": "dispatched",
    "resolve": "resolved",
    "false-alarm": "false_alarm",
}


def _send_down(
    request: Request,
    conn: Any,
    alarm_id: int,
    action: str,
    origin: str,
    note: str | None,
    user: Principal,
) -> Response:
    """An alarm of a county federated here (docs/operations.md, Federation): the change is sent
    to the county, whose state decides; it shows here when the county's row comes back. 202."""
    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse

    from federation.relay import AlarmCommand, send_command

    cmd = AlarmCommand(alarm_id=alarm_id, state=TARGET[action], by=user.username, note=note)  # type: ignore[arg-type]
    try:
        send_command(request.app.state.settings, origin, cmd, role="api")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ApiError(
            503,
            f"alarm {alarm_id} belongs to {origin}; the change could not be sent there: {exc}",
            code="alarm_upstream_unreachable",
        ) from None
    record(
        conn,
        user.username,
        ACTIONS[action][1],
        "alarm",
        str(alarm_id),
        {"sent_to": origin, "to": TARGET[action], "note": note},
    )
    detail = _detail(conn, alarm_id, user)
    return JSONResponse(status_code=202, content=jsonable_encoder(detail))


def _route(action: str, doc: str):
    def handler(
        request: Request,
        conn: DbTx,
        body: ActionIn | None = None,
        alarm_id: int = ALARM_ID,
        user: Principal = Depends(require("operator")),
    ) -> AlarmDetail | Response:
        return _act(request, conn, alarm_id, action, body, user)

    handler.__doc__ = doc
    handler.__name__ = f"alarm_{action.replace('-', '_')}"
    router.add_api_route(
        f"/alarms/{{alarm_id}}/{action}",
        handler,
        methods=["POST"],
        response_model=AlarmDetail,
        summary=f"{action.replace('-', ' ').capitalize()} an alarm",
        responses={
            202: {
                "model": AlarmDetail,
                "description": "a county's alarm (federated here): the change was sent to the "
                "county, which decides; the alarm as it stands here",
            },
            404: {"model": ErrorOut},
            409: {"model": ErrorOut, "description": "not allowed from the current state"},
            503: {"model": ErrorOut, "description": "a county's alarm: the county's link is down"},
        },
    )


_route("acknowledge", "new -> acknowledged, by the signed-in operator (logged with who and when).")
_route("dispatch", "acknowledged -> dispatched: someone is sent.")
_route("resolve", "acknowledged or dispatched -> resolved.")
_route("false-alarm", "acknowledged or dispatched -> false alarm.")


class BulkAcknowledgeIn(BaseModel):
    """Alarms to acknowledge at once, with one note for every trail."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(
        min_length=1, max_length=500, description="Alarm ids (1-500)", examples=[[93, 94, 97]]
    )
    note: str | None = Field(
        None,
        max_length=2000,
        description="Note written to each alarm's trail",
        examples=["同一起事件"],
    )


class BulkFailure(BaseModel):
    """An alarm of a bulk step that was not changed, and why."""

    id: int
    code: str = Field(description="Stable error code", examples=["alarm_bad_transition"])
    reason: str


class BulkResult(BaseModel):
    """What a bulk step did: the alarms changed and the ones that were not, with the reason."""

    done: list[int]
    failed: list[BulkFailure]


@router.post(
    "/alarms/acknowledge",
    response_model=BulkResult,
    summary="Acknowledge several alarms with one note",
    operation_id="acknowledge_alarms",
)
def acknowledge_many(
    conn: DbTx, body: BulkAcknowledgeIn, user: Principal = Depends(require("operator"))
) -> BulkResult:
    """new -> acknowledged for each alarm, each in its own step of the trail; the others are listed with the reason."""
    done: list[int] = []
    failed: list[BulkFailure] = []
    ids = list(dict.fromkeys(i for i in body.ids))
    standings = lifecycle.alarm_standings(conn, ids)
    regions = {i: r.region_code for i, r in standings.items()}
    # a county's alarm federated here: its county decides
    elsewhere = {i: r.origin for i, r in standings.items() if r.elsewhere}
    for alarm_id in ids:
        if alarm_id in elsewhere:  # a county's alarm federated here: its county decides
            failed.append(
                BulkFailure(
                    id=alarm_id,
                    code="alarm_elsewhere",
                    reason=f"alarm {alarm_id} belongs to {elsewhere[alarm_id]}: acknowledge "
                    f"it alone (POST /api/v1/alarms/{alarm_id}/acknowledge sends it there)",
                )
            )
            continue
        if alarm_id not in regions:
            failed.append(
                BulkFailure(
                    id=alarm_id,
                    code="alarm_not_found",
                    reason=f"alarm {alarm_id} does not exist",
                )
            )
            continue
        if not user.may_touch(regions[alarm_id]):
            failed.append(
                BulkFailure(
                    id=alarm_id,
                    code="alarm_outside_region",
                    reason=f"alarm {alarm_id} is outside the regions assigned to {user.username!r}",
                )
            )
            continue
        try:
            with conn.begin_nested():
                result = lifecycle.acknowledge(conn, alarm_id, user.username, body.note)
                record(
                    conn,
                    user.username,
                    "alarm.acknowledge",
                    "alarm",
                    str(alarm_id),
                    {
                        "from": result.get("previous_state"),
                        "to": result.get("state"),
                        "note": body.note,
                        "bulk": len(ids),
                    },
                )
        except (lifecycle.AlarmNotFound, lifecycle.AlarmTransitionError) as exc:
            code = (
                "alarm_not_found"
                if isinstance(exc, lifecycle.AlarmNotFound)
                else "alarm_bad_transition"
            )
            failed.append(BulkFailure(id=alarm_id, code=code, reason=str(exc)))
            continue
        done.append(alarm_id)
    return BulkResult(done=done, failed=failed)
