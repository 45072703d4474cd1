"""Federation: a county's live event is on its city's bus once, however often it is delivered.

The bridge and the relay carry events with QoS 1: after a reconnect (or a relay stopped between
its commit and its acknowledgement) the same event may be delivered again. `hub_events` gets the
event's origin hub and its id there; a unique index on the two makes the relay's insert of a
repeat a no-op. The hub's own events leave both NULL.
"""

from alembic import op

revision = "0013_fed_event_once"
down_revision = "0012_fed_origin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE hub_events ADD COLUMN origin text, ADD COLUMN origin_event_id bigint;
        CREATE UNIQUE INDEX hub_events_origin_event_uq ON hub_events (origin, origin_event_id)
            WHERE origin_event_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP INDEX hub_events_origin_event_uq; "
        "ALTER TABLE hub_events DROP COLUMN origin, DROP COLUMN origin_event_id"
    )
