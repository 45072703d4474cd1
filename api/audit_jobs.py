"""Audit jobs: run the geo audit engine for a region in the background and keep the whole report."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from api.trail import record

log = logging.getLogger(__name__)

# A running job holds this transaction-level advisory lock (namespace, job id) while it runs, so
# any API process can tell a job whose runner is gone (an API restart) from one still running.
JOB_LOCK_NAMESPACE = 28181
# A job is only reaped this long after it was asked for: the background task takes its lock a
# moment after the request that created the job has answered.
START_GRACE_S = 60.0
INTERRUPTED = "interrupted: the API process running it stopped before it finished; run it again"


def create_job(conn: Connection, region_code: str, as_of: datetime | None, actor: str) -> int:
    """Record a new running job (and who asked for it); returns its id."""
    job_id = conn.execute(
        text(
            "INSERT INTO api_audit_jobs (region_code, as_of, requested_by) VALUES (:r, :a, :u) RETURNING id"
        ),
        {"r": region_code, "a": as_of, "u": actor},
    ).scalar_one()
    record(
        conn, actor, "audit.run", "audit", str(job_id), {"region_code": region_code, "as_of": as_of}
    )
    return job_id


def run_job(
    engine: Engine, job_id: int, region_code: str, as_of: datetime | None, actor: str
) -> None:
    """Run the audit and its gap suggestions, then store the report (or the reason it failed)."""
    from geo.audit import AuditError, run_audit
    from geo.gaps import suggest
    from geo.rulepack import RulePackError, load_rule_pack

    try:
        pack = load_rule_pack()
        with engine.begin() as conn:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:ns, CAST(:id % 2147483647 AS int))"),
                {"ns": JOB_LOCK_NAMESPACE, "id": job_id},
            )
            report = run_audit(conn, region_code, pack, as_of, actor=actor, save=True)
            suggestions = suggest(conn, report, pack)
            conn.execute(
                text(
                    "UPDATE api_audit_jobs SET status = 'done', finished_at = now(), run_id = :run, "
                    "report = CAST(:rep AS jsonb), suggestions = CAST(:sug AS jsonb) WHERE id = :id"
                ),
                {
                    "id": job_id,
                    "run": report.run_id,
                    "rep": report.model_dump_json(),
                    "sug": suggestions.model_dump_json(),
                },
            )
    except (AuditError, RulePackError) as exc:
        _fail(engine, job_id, str(exc))
    except Exception as exc:  # the job records why; the API process keeps serving
        log.exception("audit job %s failed", job_id)
        _fail(engine, job_id, f"{exc.__class__.__name__}: {exc}")


def _fail(engine: Engine, job_id: int, reason: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE api_audit_jobs SET status = 'failed', finished_at = now(), error = :e WHERE id = :id"
            ),
            {"id": job_id, "e": reason[:2000]},
        )


def reap_interrupted(conn: Connection) -> int:
    """Mark failed the running jobs that no process runs any more (their lock is free); committed
    on `conn` at once (the locks tried are the transaction's)."""
    n = conn.execute(
        text(
            "UPDATE api_audit_jobs SET status = 'failed', finished_at = now(), error = :e "
            "WHERE status = 'running' AND requested_at < now() - make_interval(secs => :grace) "
            "AND pg_try_advisory_xact_lock(:ns, CAST(id % 2147483647 AS int))"
        ),
        {"e": INTERRUPTED, "grace": START_GRACE_S, "ns": JOB_LOCK_NAMESPACE},
    ).rowcount
    conn.commit()
    return n


def load_job(conn: Connection, job_id: int) -> dict[str, Any] | None:
    """The job row with its report and suggestions decoded (None when unknown)."""
    row = (
        conn.execute(
            text(
                "SELECT id, region_code, as_of, requested_by, requested_at, status, error, run_id, finished_at, "
                "report, suggestions FROM api_audit_jobs WHERE id = :id"
            ),
            {"id": job_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    out = dict(row)
    for key in ("report", "suggestions"):
        if isinstance(out[key], str):
            out[key] = json.loads(out[key])
    return out


def report_models(job: dict[str, Any]):
    """(AuditReport, Suggestions | None) rebuilt from a finished job."""
    from geo.audit import AuditReport
    from geo.gaps import Suggestions

    report = AuditReport.model_validate(job["report"])
    suggestions = Suggestions.model_validate(job["suggestions"]) if job.get("suggestions") else None
    return report, suggestions
