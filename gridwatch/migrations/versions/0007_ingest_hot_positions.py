"""Ingest: drop the GiST index on devices.last_position so position updates are HOT.

With that index every position report (thousands a second from patrol cars and trackers) was a
non-HOT update of `devices` and wrote a new entry into all seven of its indexes, the camera
coverage-sector GiST among them. No query used it: the API's live map filters on
coalesce(last_position, position), which that index cannot serve, and the alarm camera lookup
goes through `position`/`fov`. Measured with bench/ingest_bench.py (see bench/RESULTS.md).
"""

from alembic import op

revision = "0007_ingest_hot_positions"
down_revision = "0003_ingest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS devices_last_position_gix")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS devices_last_position_gix ON devices USING gist (last_position)"
    )
