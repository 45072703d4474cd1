"""Ingest under abuse: alarms positioned outside their device's region are flagged, and pending
devices are counted per source (the id's 8-digit centre code) for their cap and expire by age.
"""

from alembic import op

revision = "0009_guard_ingest_abuse"
down_revision = "0008_ingest_autovacuum"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Set at ingest when the device put the alarm at a position its region does not cover
        -- (NULL: no position given, or the region has no boundary to compare with).
        ALTER TABLE alarms ADD COLUMN outside_region boolean;
        -- The per-source cap of pending devices counts rows by the id's centre code.
        CREATE INDEX pending_devices_source_idx ON pending_devices (left(id::text, 8));
        CREATE INDEX pending_devices_last_seen_idx ON pending_devices (last_seen);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS pending_devices_last_seen_idx;
        DROP INDEX IF EXISTS pending_devices_source_idx;
        ALTER TABLE alarms DROP COLUMN IF EXISTS outside_region;
        """
    )
