"""API: alarms_open_queue_idx, the open alarms in the queue's order (most severe, then oldest).

`GET /alarms?state=open` (the operators' queue, the default order `severity`) took its page of 50
by reading every open alarm and sorting them: with the demo's fleet raising alarms nobody
acknowledged for 45 minutes (18,000 open), 15.6 of the page's 30 ms of PostgreSQL
(bench/RESULTS.md). This partial index hands them out in that order, so the page reads 51
entries. Only open alarms are in it (closed ones never come back to the queue), and a plan with
the states bound as values proves the predicate, as for alarms_open_merge_idx.
"""

from alembic import op

revision = "0015_api_alarm_queue_idx"
down_revision = "0014_api_device_tally"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS alarms_open_queue_idx ON alarms (severity, raised_at, id) "
        "WHERE state = ANY (ARRAY['new'::text, 'acknowledged'::text, 'dispatched'::text])"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS alarms_open_queue_idx")
