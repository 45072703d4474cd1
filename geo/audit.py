"""The audit engine: every rule of a rule pack over a region, set-based in PostGIS, rolled up at every level."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Connection, text

from geo import audit_sql as q
from geo.rulepack import RATE_KINDS, Rule, RulePack, load_rule_pack

M = TypeVar("M", bound=BaseModel)

LEVEL_NAMES = {1: "province", 2: "city", 3: "county", 4: "township", 5: "village"}


class AuditError(ValueError):
    """An audit that cannot run: unknown region, bad time, bad rule pack."""


class RollupRow(BaseModel):
    """One rule at one region: how many units pass, and the rate where the rule is a rate."""

    code: str
    name: str
    level: int
    rule: str
    units: int
    passed: int
    failed: int
    pct_passed: float | None
    numerator: float | None = None
    denominator: float | None = None
    rate: float | None = None
    ok: bool


class Failure(BaseModel):
    """A failing unit with the reason, for drill-down."""

    rule: str
    unit_kind: str
    unit_id: str
    name: str | None
    region_code: str | None
    value: float | None
    target: float | None
    reason: str | None
    lon: float | None = None
    lat: float | None = None
    basis: str | None = None


class UnitResult(BaseModel):
    """One unit under one rule: status, measured value, threshold, and the basis it used."""

    rule: str
    unit_kind: str
    unit_id: str
    name: str | None
    region_code: str | None
    status: Literal["pass", "fail"]
    value: float | None
    target: float | None
    basis: str | None
    reason: str | None


class RuleStatus(BaseModel):
    """Every rule of the pack at the audited region: pass, fail, or not assessed and why."""

    rule: str
    title: str
    status: Literal["pass", "fail", "not assessed"]
    units: int
    passed: int
    failed: int
    rate: float | None
    target: float | None
    missing: str | None = None


class Finding(BaseModel):
    """A located problem with an area: a grid gap, overlap, or grid outside its parent."""

    rule: str
    kind: str
    unit_id: str
    region_code: str | None
    area_m2: float
    lon: float
    lat: float
    detail: str
    geometry: dict | None = None


class RuleInfo(BaseModel):
    id: str
    kind: str
    title: str
    source: str
    target: float | None
    is_rate: bool


class AuditReport(BaseModel):
    """The outcome of one audit run."""

    run_id: int | None = None
    region_code: str
    region_name: str
    region_level: int
    as_of: datetime
    rule_pack: str
    rule_pack_sha256: str | None
    params: dict
    rules: list[RuleInfo]
    rollup: list[RollupRow]
    failures: list[Failure]
    findings: list[Finding]
    notes: list[str] = Field(default_factory=list)
    timings_s: dict[str, float] = Field(default_factory=dict)
    statuses: list[RuleStatus] = Field(default_factory=list)
    units: list[UnitResult] = Field(default_factory=list)
    retired: list[dict] = Field(default_factory=list)

    def summary(self) -> list[RollupRow]:
        """The roll-up rows of the audited region itself, one per rule, in rule-pack order."""
        order = {r.id: i for i, r in enumerate(self.rules)}
        rows = [r for r in self.rollup if r.code == self.region_code]
        return sorted(rows, key=lambda r: order.get(r.rule, len(order)))


def code_range(code: str) -> tuple[str, str, str]:
    """(prefix, low, high): every 12-digit code under `code` lies in [low, high]."""
    code = code.strip()
    prefix = code
    for length in (2, 4, 6, 9, 12):
        if set(code[length:]) <= {"0"}:
            prefix = code[:length]
            break
    return prefix, prefix.ljust(12, "0"), prefix.ljust(12, "9")


def _parse_at(at: datetime | str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if isinstance(at, datetime):
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    try:
        value = datetime.fromisoformat(str(at).strip().replace("Z", "+00:00"))
    except ValueError:
        raise AuditError(
            f"--at: {at!r} is not an ISO 8601 time such as 2026-11-01T08:00:00+08:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_audit(
    conn: Connection,
    region_code: str,
    pack: RulePack | None = None,
    at: datetime | str | None = None,
    *,
    actor: str = "audit",
    save: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    workers: int = 2,
) -> AuditReport:
    """Audit `region_code` (and everything below it) against every enabled rule of `pack`.

    All work is set-based SQL on temporary tables inside the caller's transaction (committed by
    the caller when `save`). `at` is the audit time (default now): devices registered after it
    or retired before it do not count; online status and quality are read as of then. With
    `workers` > 1 the grid rules run at the same time on a second connection from the same engine.
    """
    pack = pack or load_rule_pack()
    as_of = _parse_at(at)
    region = conn.execute(
        text("SELECT code, name, level, geom IS NOT NULL AS has_geom FROM regions WHERE code = :c"),
        {
            "c": region_code.strip().ljust(12, "0")
            if len(region_code.strip()) < 12
            else region_code.strip()
        },
    ).first()
    if region is None:
        raise AuditError(
            f"--region: {region_code!r} is not an imported region (import divisions first)"
        )
    prefix, low, high = code_range(region.code)
    utm = _utm_for(conn, low, high)
    p = pack.params
    now = datetime.now(UTC)
    args: dict[str, Any] = {
        "low": low,
        "high": high,
        "at": as_of,
        "eps": p.point_cluster_m,
        "kinds": p.camera_kinds,
        "t0": as_of - timedelta(days=p.online_period_days),
        "region": region.code,
        "min_area": p.min_tiling_area_m2,
        "poly_share": p.min_polygon_share,
        "line_share": p.min_line_share,
        "public_kinds": p.public_area_kinds,
        "industry_kinds": p.key_industry_kinds,
        "utm": utm,
    }
    notes: list[str] = []
    timings: dict[str, float] = {}
    rules = pack.rules
    total = len(rules) + 2
    done = [0]
    lock = threading.Lock()

    def tick(name: str, seconds: float) -> None:
        with lock:
            timings[name] = round(seconds, 4)
            done[0] += 1
            if progress:
                progress(name, done[0], total)

    live_now = abs((as_of - now).total_seconds()) < 120
    online_expr = q.ONLINE_NOW if live_now else q.ONLINE_AT
    if progress:
        progress("cameras", 0, total)
    grid_rules = [r for r in rules if r.kind in SIDE_KINDS]
    other_rules = [r for r in rules if r.kind not in SIDE_KINDS]
    # a second connection cannot see this transaction's own uncommitted writes: stay serial then
    dirty = conn.execute(text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")).scalar_one()
    parallel = workers > 1 and grid_rules and other_rules and not dirty
    side: dict[str, Any] = {}
    thread = None
    if parallel:
        # grid rules do not read cameras: run them on a second connection (a second core)
        def side_job() -> None:
            try:
                with conn.engine.connect() as c2, c2.begin():
                    side["out"] = _run_group(
                        c2, pack, grid_rules, args, notes, online_expr, prefix, tick, save
                    )
            except Exception as exc:  # re-raised in the caller's thread
                side["error"] = exc

        thread = threading.Thread(target=side_job, name="audit-grids", daemon=True)
        thread.start()
    main_rules = other_rules if parallel else rules
    out = _run_group(conn, pack, main_rules, args, notes, online_expr, prefix, tick, False)
    rollup, failures, findings = out["rollup"], out["failures"], out["findings"]
    if thread is not None:
        thread.join()
        if "error" in side:
            raise side["error"]
        rollup += side["out"]["rollup"]
        failures += side["out"]["failures"]
        findings += side["out"]["findings"]
        if save:  # the other connection's units join this run's tables before saving
            _absorb(conn, side["out"]["units"], side["out"]["finds"])
    if progress:
        progress("done", total, total)
    units = out["unit_rows"]
    if thread is not None:
        # saved runs copied the other connection's units into this one's tables already
        units = _models(UnitResult, conn, q.UNITS) if save else units + side["out"]["unit_rows"]
    retired = [dict(r) for r in conn.execute(text(q.RETIRED), args).mappings()]
    if retired:
        notes.append(
            f"{len(retired)} retired unit(s) (codes abolished in a later list) are not audited"
        )
    notes += _classification_notes(conn, args)
    report = AuditReport(
        region_code=region.code,
        region_name=region.name,
        region_level=region.level,
        as_of=as_of,
        rule_pack=pack.name,
        rule_pack_sha256=pack.sha256,
        params=p.model_dump(),
        rules=[
            RuleInfo(
                id=r.id,
                kind=r.kind,
                title=r.title,
                source=r.source,
                target=r.target,
                is_rate=r.kind in RATE_KINDS,
            )
            for r in rules
        ],
        rollup=rollup,
        failures=failures,
        findings=findings,
        notes=notes,
        timings_s=timings,
        units=units,
        retired=retired,
    )
    report.statuses = rule_statuses(report, pack, conn, args)
    if save:
        report.run_id = _save(conn, report, actor)
    return report


GRID_KINDS = {"grid_tiling", "grid_workers", "grid_households"}
# rules that go to the second connection: the grid rules, which read no cameras
SIDE_KINDS = GRID_KINDS


def _run_group(
    conn: Connection,
    pack: RulePack,
    rules: list[Rule],
    args: dict,
    notes: list[str],
    online_expr: str,
    prefix: str,
    tick: Callable[[str, float], None],
    keep_units: bool,
) -> dict:
    """Run some rules on one connection: session tables, cameras if needed, rules, roll-up, fetch."""
    for stmt in q.SESSION:
        conn.execute(text(stmt))
    if any(r.kind not in GRID_KINDS for r in rules):
        t = time.perf_counter()
        for stmt in q.cameras(online_expr):
            conn.execute(text(stmt), args)
        tick("cameras", time.perf_counter() - t)
    for rule in rules:
        t = time.perf_counter()
        _run_rule(conn, pack, rule, args, notes, online_expr)
        tick(rule.id, time.perf_counter() - t)
    t = time.perf_counter()
    sub = pack.model_copy(update={"rule": rules})
    conn.execute(
        text("ANALYZE _a_units")
    )  # a real row count turns the roll-up into hash aggregates
    rollup = _rollup(conn, sub, args, prefix)
    tick(
        "roll-up"
        if any(r.kind not in SIDE_KINDS for r in rules)
        else "roll-up (second connection)",
        time.perf_counter() - t,
    )
    out = {
        "rollup": rollup,
        # rows from our own SQL: typed already, so build the models without re-validating them
        "failures": _models(Failure, conn, q.FAILURES),
        "findings": [
            Finding(**{**r, "geometry": json.loads(r["geometry"]) if r["geometry"] else None})
            for r in _dicts(conn, q.FINDINGS)
        ],
    }
    out["unit_rows"] = _models(UnitResult, conn, q.UNITS)
    if keep_units:
        out["units"] = [tuple(r) for r in conn.execute(text("SELECT * FROM _a_units"))]
        out["finds"] = [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT rule, pid, kind, unit_id, region_code, area_m2, detail, ST_AsEWKB(geom) FROM _a_find"
                )
            )
        ]
    return out


def _absorb(conn: Connection, units: list[tuple], finds: list[tuple]) -> None:
    """Copy units and findings computed on another connection into this run's temp tables."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy("COPY _a_units FROM STDIN") as copy:
            for row in units:
                copy.write_row(row)
        cur.execute(
            "CREATE TEMP TABLE _a_find_in (rule text, pid text, kind text, unit_id text, region_code text, "
            "area_m2 double precision, detail text, geom bytea) ON COMMIT DROP"
        )
        with cur.copy("COPY _a_find_in FROM STDIN") as copy:
            for row in finds:
                copy.write_row(row)
        cur.execute(
            "INSERT INTO _a_find SELECT rule, pid, kind, unit_id, region_code, area_m2, detail, "
            "ST_GeomFromEWKB(geom) FROM _a_find_in"
        )


def _run_rule(
    conn: Connection,
    pack: RulePack,
    rule: Rule,
    args: dict,
    notes: list[str],
    online_expr: str,
) -> None:
    a = {
        **args,
        "rule": rule.id,
        "min": rule.min,
        "max": rule.max,
        "min_rate": rule.min_rate,
        "levels": rule.levels,
        "applies": rule.applies_to,
    }
    if rule.kind == "village_points":
        q.ensure_points(conn, a)
        conn.execute(text(q.VILLAGE_POINTS), a)
    elif rule.kind == "natural_village_points":
        q.ensure_points(conn, a)
        conn.execute(text(q.NATURAL_VILLAGE_POINTS), a)
    elif rule.kind == "village_coverage":
        q.ensure_points(conn, a)
        conn.execute(text(q.VILLAGE_COVERAGE), a)
    elif rule.kind == "smart_communities":
        q.ensure_villages(conn, a)
        conn.execute(text(q.SMART_COMMUNITIES), {**a, "device_kinds": rule.device_kinds})
    elif rule.kind == "key_sites":
        q.ensure_sites(conn, a, online_expr)
        conn.execute(text(q.KEY_SITES), {**a, "site_kinds": pack.site_kinds(rule)})
    elif rule.kind == "grid_tiling":
        q.ensure_grids(conn, a)
        if q.temp_table_exists(conn, "_a_par"):
            raise AuditError(f"rule {rule.id}: only one grid_tiling rule per pack")
        for stmt in q.GRID_TILING:
            conn.execute(text(stmt), a)
    elif rule.kind == "grid_workers":
        q.ensure_grids(conn, a)
        conn.execute(text(q.GRID_WORKERS), a)
    elif rule.kind == "grid_households":
        q.ensure_grids(conn, a)
        conn.execute(text(q.GRID_HOUSEHOLDS), {**a, "guideline": rule.guideline})
    elif rule.kind == "networking_rate":
        conn.execute(text(q.NETWORKING_RATE), a)
    elif rule.kind == "online_rate":
        conn.execute(text(q.ONLINE_RATE_PRESENCE), a)
    elif rule.kind == "intact_rate":
        if rule.camera_set != "all":
            q.ensure_sites(conn, a, online_expr)
        conn.execute(text(q.intact_rate(rule.camera_set)), a)
    elif rule.kind == "hd_ratio":
        conn.execute(
            text(q.HD_RATIO),
            {
                **a,
                "min_w": rule.min_width,
                "min_h": rule.min_height,
                "since": datetime.combine(rule.registered_since, datetime.min.time(), UTC)
                if rule.registered_since
                else None,
            },
        )


def _construct(cls: type[M], keys: list[str], rows: Iterable[Sequence[Any]]) -> list[M]:
    """Models from rows of our own SQL, typed already: the state model_construct would leave
    (the row as the instance's __dict__, every field set), without its per-field loop, which
    cost more than fetching for a province's 100,000s of units. Columns must be the model's
    fields in order; otherwise (or for models with extras, privates or a post-init) it falls
    back to model_construct."""
    fields = list(cls.model_fields)
    if (
        keys != fields
        or cls.__pydantic_post_init__
        or cls.__private_attributes__
        or cls.model_config.get("extra") == "allow"
    ):
        return [cls.model_construct(**dict(zip(keys, row, strict=True))) for row in rows]
    new, put = cls.__new__, object.__setattr__
    out = []
    for row in rows:
        m = new(cls)
        put(m, "__dict__", dict(zip(keys, row, strict=True)))
        put(m, "__pydantic_fields_set__", set(fields))
        put(m, "__pydantic_extra__", None)
        put(m, "__pydantic_private__", None)
        out.append(m)
    return out


def _models(cls: type[M], conn: Connection, sql: str) -> list[M]:
    result = conn.execute(text(sql))
    return _construct(cls, list(result.keys()), result)


def _dicts(conn: Connection, sql: str, params: dict | None = None) -> list[dict[str, Any]]:
    """Rows as plain dicts: a province's 100,000s of rows cost several seconds as RowMappings."""
    result = conn.execute(text(sql), params or {})
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def _rollup(conn: Connection, pack: RulePack, args: dict, prefix: str) -> list[RollupRow]:
    rate_rules = [r.id for r in pack.rules if r.kind in RATE_KINDS]
    targets = {r.id: r.min_rate for r in pack.rules if r.kind in RATE_KINDS}
    out = []
    # the group counts of the expanded rows are unknown to the planner: ask for hash aggregates
    conn.execute(text("SET LOCAL enable_sort = off"))
    rows = _dicts(conn, q.ROLLUP, {**args, "rate_rules": rate_rules})
    conn.execute(text("SET LOCAL enable_sort = on"))
    for row in sorted(rows, key=lambda r: (r["level"], r["code"], r["rule"])):
        rate = row["rate"]
        ok = (
            (rate is not None and rate + 1e-12 >= (targets.get(row["rule"]) or 0))
            if row["rule"] in targets
            else row["failed"] == 0
        )
        out.append((*row.values(), bool(ok)))
    return _construct(RollupRow, [*(rows[0] if rows else {}), "ok"], out)


def _utm_for(conn: Connection, low: str, high: str) -> int:
    """The UTM zone of the audited region (its boundary, else its units' points), for metres."""
    from hardware.crs import utm_srid

    row = conn.execute(
        text(
            "SELECT ST_X(c) AS x, ST_Y(c) AS y FROM (SELECT ST_Centroid(ST_Extent(coalesce(geom, point))::geometry) AS c "
            "FROM regions WHERE code BETWEEN :l AND :h AND (geom IS NOT NULL OR point IS NOT NULL)) s"
        ),
        {"l": low, "h": high},
    ).first()
    if row is None or row.x is None:
        row = conn.execute(
            text(
                "SELECT ST_X(c) AS x, ST_Y(c) AS y FROM (SELECT ST_Centroid(ST_Extent(position)::geometry) AS c "
                "FROM devices WHERE region_code BETWEEN :l AND :h) s"
            ),
            {"l": low, "h": high},
        ).first()
    if row is None or row.x is None:
        return 32650
    return utm_srid(row.x, row.y)


def _classification_notes(conn: Connection, args: dict) -> list[str]:
    """How villages were told from communities: by the code's committee range, else by name."""
    if not q.temp_table_exists(conn, "_a_vil"):
        return []
    row = conn.execute(
        text(
            "SELECT count(*) FILTER (WHERE class_basis LIKE 'code%') AS by_code, "
            "count(*) FILTER (WHERE class_basis LIKE 'name%') AS by_name, "
            "count(*) FILTER (WHERE admin) AS admin, count(*) FILTER (WHERE NOT admin) AS community FROM _a_vil"
        )
    ).one()
    if not (row.by_code or row.by_name):
        return []
    return [
        f"village-level units: {row.admin} administrative village(s), {row.community} "
        f"community/communities; told apart by the code's committee range (001-199 residents' "
        f"committee, 200-399 village committee) for {row.by_code}, by name (code outside both "
        f"ranges) for {row.by_name}"
    ]


# what a rule kind needs; named when a rule has no unit to assess
_NEEDS = {
    "village_points": "administrative villages (import divisions to village level)",
    "village_coverage": "administrative villages (import divisions to village level)",
    "natural_village_points": "natural villages (gridwatch import villages)",
    "smart_communities": "communities (居委会/社区) in the division list",
    "key_sites": "key sites of these kinds (gridwatch import boundaries --kind keysite)",
    "grid_tiling": "level-1 grids and the region's boundary (import boundaries --kind grid/region)",
    "grid_workers": "grids at the rule's levels (gridwatch import boundaries --kind grid)",
    "grid_households": "grids at the rule's levels (gridwatch import boundaries --kind grid)",
    "networking_rate": "registered cameras in the region",
    "online_rate": "networked cameras in the region",
    "intact_rate": "video-quality results (camera_health) for the rule's cameras",
    "hd_ratio": "registered cameras in the rule's period",
}


def rule_statuses(
    report: AuditReport, pack: RulePack, conn: Connection | None = None, args: dict | None = None
) -> list[RuleStatus]:
    """One status per rule of the pack, in pack order; a rule with no unit is "not assessed"."""
    own = {r.rule: r for r in report.summary()}
    out = []
    for r in pack.rules:
        row = own.get(r.id)
        if row is None or row.units == 0:
            out.append(
                RuleStatus(
                    rule=r.id,
                    title=r.title,
                    status="not assessed",
                    units=0,
                    passed=0,
                    failed=0,
                    rate=None,
                    target=r.target,
                    missing=f"no input: needs {_NEEDS.get(r.kind, 'its inputs')}",
                )
            )
            continue
        out.append(
            RuleStatus(
                rule=r.id,
                title=r.title,
                status="pass" if row.ok else "fail",
                units=row.units,
                passed=row.passed,
                failed=row.failed,
                rate=row.rate,
                target=r.target,
            )
        )
    return out


def _save(conn: Connection, report: AuditReport, actor: str) -> int:
    run_id = conn.execute(
        text(
            "INSERT INTO audit_runs (region_code, rule_pack, rule_pack_sha256, as_of, actor, finished_at, summary) "
            "VALUES (:r, :p, :h, :at, :a, now(), CAST(:s AS jsonb)) RETURNING id"
        ),
        {
            "r": report.region_code,
            "p": report.rule_pack,
            "h": report.rule_pack_sha256 or "0" * 64,
            "at": report.as_of,
            "a": actor,
            "s": json.dumps(
                [r.model_dump() for r in report.summary()] + [{"notes": report.notes}],
                ensure_ascii=False,
            ),
        },
    ).scalar_one()
    conn.execute(text(q.SAVE_RESULTS), {"run": run_id})
    conn.execute(text(q.SAVE_FINDINGS), {"run": run_id})
    return run_id
