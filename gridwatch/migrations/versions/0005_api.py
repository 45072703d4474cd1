"""API schema: audit jobs run through the API (who asked, when, the full report for fetch and download).

The geo audit engine records each run's summary and per-unit results in audit_runs/audit_results;
an API job keeps the whole report and the gap suggestions as JSON so the auditor view and the
HTML/CSV downloads can be served again later without re-running the audit.
"""

from alembic import op

revision = "0005_api"
down_revision = "0001_foundation"
branch_labels = ("api",)
depends_on = None


UPGRADE = """
CREATE TABLE api_audit_jobs (
    id              bigserial PRIMARY KEY,
    region_code     char(12) NOT NULL REFERENCES regions(code) ON DELETE CASCADE,
    as_of           timestamptz,
    requested_by    text NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    error           text,
    run_id          bigint,
    finished_at     timestamptz,
    report          jsonb,
    suggestions     jsonb
);
CREATE INDEX api_audit_jobs_region_idx ON api_audit_jobs (region_code, requested_at DESC);
"""

DOWNGRADE = "DROP TABLE IF EXISTS api_audit_jobs;"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
