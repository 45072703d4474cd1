"""Audits: run the geo audit engine for a region, fetch the result, the choropleth, HTML/CSV downloads."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select

from api.audit_jobs import create_job, load_job, reap_interrupted, report_models, run_job
from api.deps import Db, DbTx, Principal, get_engine, require
from api.errors import COMMON_RESPONSES, ApiError, ErrorOut
from api.geojson import FeatureCollection, Page, paging
from api.headers import REPORT_POLICY
from api.query import all_of, in_scope, one_page
from api.types import Rfc3339
from geo.regions import region_loaded, region_outlines
from gridwatch import schema

router = APIRouter(tags=["audits"], responses=COMMON_RESPONSES)

READERS = ("auditor", "operator")
JOB_ID = Path(..., ge=1, le=2**62)
# typed as FastAPI's `responses` (int | str keys): merged with ** into it
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}
NOT_READY: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "the audit is still running or failed"}
}


class AuditIn(BaseModel):
    """Which region to audit, and as of when (default now)."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(pattern=r"^[0-9]{12}$", description="12-digit division code")
    at: Rfc3339 | None = Field(None, description="Audit time (RFC 3339); default now")


class AuditJob(BaseModel):
    """An audit requested through the API."""

    id: int
    region_code: str
    as_of: datetime | None = None
    requested_by: str
    requested_at: datetime
    status: str = Field(description="running, done or failed")
    error: str | None = None
    run_id: int | None = Field(None, description="The geo audit run (audit_runs.id)")
    finished_at: datetime | None = None


class AuditJobPage(BaseModel):
    """A page of audit jobs, newest first."""

    items: list[AuditJob]
    limit: int
    offset: int
    next_offset: int | None = None


class AuditResult(AuditJob):
    """A finished audit: the region's summary, the roll-up, failing units, findings and suggestions."""

    region_name: str | None = None
    summary: list[dict[str, Any]] = []
    rollup_levels: list[int] = []
    failures: list[dict[str, Any]] = []
    failures_total: int = 0
    findings: list[dict[str, Any]] = []
    suggestions: dict[str, Any] | None = None
    notes: list[str] = []


_jobs = schema.api_audit_jobs
# what a listing shows of a job (the report and suggestions are fetched one job at a time)
JOB_COLUMNS = tuple(c for c in _jobs.c if c.name not in ("report", "suggestions"))


def _job_or_404(conn: Connection, job_id: int, user: Principal) -> dict:
    reap_interrupted(conn)
    job = load_job(conn, job_id)
    if job is None:
        raise ApiError(404, f"audit {job_id} does not exist")
    if not user.may_touch(job["region_code"]):
        raise ApiError(
            403,
            f"audit {job_id} is of region {job['region_code']}, outside the regions assigned to {user.username!r}",
        )
    return job


def _finished(job: dict) -> None:
    if job["status"] == "running":
        raise ApiError(409, f"audit {job['id']} is still running; ask again in a moment")
    if job["status"] == "failed":
        raise ApiError(409, f"audit {job['id']} failed: {job['error']}")


@router.post(
    "/audits", response_model=AuditJob, status_code=202, summary="Run an audit", responses=NOT_FOUND
)
def start_audit(
    body: AuditIn,
    request: Request,
    conn: DbTx,
    background: BackgroundTasks,
    user: Principal = Depends(require("auditor")),
) -> AuditJob:
    """Audit a region (and everything below it) against the built-in rule pack, in the background.
    Poll GET /audits/{id} until `status` is done. Logged in the audit log."""
    user.require_region(body.region, "audit regions")
    if not region_loaded(conn, body.region):
        raise ApiError(404, f"region {body.region} is not loaded (import divisions first)")
    job_id = create_job(conn, body.region, body.at, user.username)
    job = load_job(conn, job_id)
    conn.commit()  # the job exists before its task looks for it
    background.add_task(run_job, get_engine(request), job_id, body.region, body.at, user.username)
    return AuditJob(**{k: job[k] for k in AuditJob.model_fields})


@router.get("/audits", response_model=AuditJobPage, summary="List audits")
def list_audits(
    conn: Db,
    region: str | None = Query(
        None, pattern=r"^[0-9]{12}$", description="Only audits of this region (exactly)"
    ),
    status: str | None = Query(None, pattern=r"^(running|done|failed)$"),
    page: Page = Depends(paging),
    user: Principal = Depends(require(*READERS)),
) -> AuditJobPage:
    """Audits run through the API, newest first."""
    cond = all_of(
        in_scope(_jobs.c.region_code, user.scopes),
        _jobs.c.region_code == region if region else None,
        _jobs.c.status == status if status else None,
    )
    stmt = one_page(select(*JOB_COLUMNS).where(cond).order_by(_jobs.c.id.desc()), page)
    reap_interrupted(conn)
    rows = conn.execute(stmt).mappings().all()
    return AuditJobPage(
        items=[AuditJob(**r) for r in rows[: page.limit]],
        limit=page.limit,
        offset=page.offset,
        next_offset=page.offset + page.limit if len(rows) > page.limit else None,
    )


@router.get(
    "/audits/{job_id}", response_model=AuditResult, summary="Fetch an audit", responses=NOT_FOUND
)
def get_audit(
    conn: Db,
    job_id: int = JOB_ID,
    rule: str | None = Query(None, max_length=64, description="Only failures of this rule"),
    failures_limit: int = Query(500, ge=0, le=20000, description="Failing units to include"),
    user: Principal = Depends(require(*READERS)),
) -> AuditResult:
    """The job; once done, the region's per-rule summary, failing units with reasons (worst first, by
    rule), located findings (grid gaps and overlaps) and the ranked suggested positions."""
    job = _job_or_404(conn, job_id, user)
    out = AuditResult(**{k: job[k] for k in AuditJob.model_fields})
    if job["status"] != "done":
        return out
    report = job["report"]
    failures = [f for f in report["failures"] if rule is None or f["rule"] == rule]
    out.region_name = report.get("region_name")
    order = {r["id"]: i for i, r in enumerate(report.get("rules", []))}
    titles = {r["id"]: r.get("title") for r in report.get("rules", [])}
    out.summary = sorted(
        (
            {**r, "title": titles.get(r["rule"])}
            for r in report["rollup"]
            if r["code"] == report["region_code"]
        ),
        key=lambda r: order.get(r["rule"], len(order)),
    )
    out.rollup_levels = sorted({r["level"] for r in report["rollup"]})
    out.failures_total = len(failures)
    out.failures = failures[:failures_limit]
    out.findings = [
        {k: v for k, v in f.items() if k != "geometry"} for f in report.get("findings", [])
    ]
    out.suggestions = job["suggestions"]
    out.notes = report.get("notes", [])
    return out


@router.get(
    "/audits/{job_id}/choropleth",
    response_model=FeatureCollection,
    summary="Compliance by region (GeoJSON)",
    responses={**NOT_FOUND, **NOT_READY},
)
def choropleth(
    conn: Db,
    job_id: int = JOB_ID,
    level: int = Query(5, ge=1, le=5, description="3 county, 4 township, 5 village"),
    rule: str | None = Query(
        None, max_length=64, description="One rule; default every rule together"
    ),
    simplify_m: float = Query(
        20, ge=0, le=5000, description="Simplify outlines to this tolerance in metres"
    ),
    user: Principal = Depends(require(*READERS)),
) -> FeatureCollection:
    """Every region of `level` under the audited region with `pct` = passing units / units (over every
    rule, or one), `failed_rules` and the rules it fails — for a map coloured by compliance."""
    job = _job_or_404(conn, job_id, user)
    _finished(job)
    rows: dict[str, dict] = {}
    for r in job["report"]["rollup"]:
        if r["level"] != level or (rule and r["rule"] != rule):
            continue
        acc = rows.setdefault(r["code"], {"units": 0, "passed": 0, "failed_rules": []})
        acc["units"] += r["units"]
        acc["passed"] += r["passed"]
        if not r["ok"]:
            acc["failed_rules"].append(r["rule"])
    shapes = region_outlines(conn, level, job["region_code"], simplify_m)
    features = []
    for code, name, geom in shapes:
        acc = rows.get(code, {"units": 0, "passed": 0, "failed_rules": []})
        pct = round(100.0 * acc["passed"] / acc["units"], 1) if acc["units"] else None
        features.append(
            {
                "type": "Feature",
                "id": code,
                "geometry": json.loads(geom),
                "properties": {
                    "code": code,
                    "name": name,
                    "units": acc["units"],
                    "passed": acc["passed"],
                    "pct": pct,
                    "failed_rules": acc["failed_rules"],
                },
            }
        )
    return FeatureCollection(
        features=features,
        number_returned=len(features),
        limit=len(features),
        offset=0,
        next_offset=None,
        next_cursor=None,
    )


@router.get(
    "/audits/{job_id}/report.html",
    response_model=None,
    summary="Download the HTML report",
    responses={
        **NOT_FOUND,
        **NOT_READY,
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
    },
)
def report_html(
    conn: Db,
    job_id: int = JOB_ID,
    user: Principal = Depends(require(*READERS)),
) -> HTMLResponse:
    """The self-contained report (map, charts, failing units, suggestions; no internet needed to open it)."""
    from geo.audit_report import map_shapes, to_html

    job = _job_or_404(conn, job_id, user)
    _finished(job)
    report, suggestions = report_models(job)
    level, shapes = map_shapes(conn, report.region_code)
    body = to_html(report, level, shapes, suggestions)
    name = f"gridwatch-audit-{report.region_code}-{job_id}.html"
    return HTMLResponse(
        body,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Security-Policy": REPORT_POLICY,
        },
    )


@router.get(
    "/audits/{job_id}/report.csv",
    summary="Download the CSV data",
    response_model=None,
    responses={
        **NOT_FOUND,
        **NOT_READY,
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
def report_csv(
    conn: Db,
    job_id: int = JOB_ID,
    user: Principal = Depends(require(*READERS)),
) -> Response:
    """Roll-up, failing units and suggestions as CSV."""
    from geo.audit_report import to_csv

    job = _job_or_404(conn, job_id, user)
    _finished(job)
    report, suggestions = report_models(job)
    name = f"gridwatch-audit-{report.region_code}-{job_id}.csv"
    return Response(
        to_csv(report, suggestions),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
