"""Ingest: lighter autovacuum/analyze on the tables the ingest worker writes all the time.

Measured (bench/RESULTS.md): at 30,000 msg/s the once-a-minute autovacuum round took ~1.5 s of
database time, and on a small machine the worker's batches slowed while it ran. Most of it was
ANALYZE work whose result does not change: `devices` is analyzed after every ~10,000 presence
and position updates although those never change what its statistics describe, and the
free-form `hub_events.payload` (never filtered on) was sampled and detoasted each time.
"""

from alembic import op

revision = "0008_ingest_autovacuum"
down_revision = "0007_ingest_hot_positions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Analyze devices after ten times its size in changes (registrations and imports
        -- analyze explicitly or are a small share of that; presence writes need no statistics).
        ALTER TABLE devices SET (autovacuum_analyze_scale_factor = 10);
        ALTER TABLE hub_events ALTER COLUMN payload SET STATISTICS 0;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE devices RESET (autovacuum_analyze_scale_factor);
        ALTER TABLE hub_events ALTER COLUMN payload SET STATISTICS -1;
        """
    )
