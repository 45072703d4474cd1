"""Federation: every row a hub publishes upstream carries its origin hub; ids stay unique city-wide.

- `federation_self` (one row) names this hub once it joins a city: its id (the `origin` of the
  rows it makes) and its number, which gives its serial ids a range of their own
  (hub_no * 2^50 ...), so alarms and trails from several counties never collide at the city.
- `federation_members` (at the city) lists the counties that joined, their number and scope.
- `origin` on the published tables defaults to this hub's id (`federation_origin()`), 'local'
  until the hub joins.
- References to alarms.id cascade an update: joining renumbers the alarms made before into the
  hub's range.
"""

from alembic import op

revision = "0012_fed_origin"
down_revision = "0001_foundation"
branch_labels = None
depends_on = "0003_ingest"

#: The tables a county publishes to its city (docs/operations.md, "Federation").
FEDERATED = (
    "regions",
    "devices",
    "device_presence",
    "alarms",
    "alarm_events",
    "alarm_cameras",
    "camera_health",
)
#: Foreign keys onto alarms.id: (table, constraint, column, on delete).
ALARM_REFS = (
    ("alarm_events", "alarm_events_alarm_id_fkey", "alarm_id", "CASCADE"),
    ("alarm_cameras", "alarm_cameras_alarm_id_fkey", "alarm_id", "CASCADE"),
    ("alarm_messages", "alarm_messages_alarm_id_fkey", "alarm_id", "CASCADE"),
    ("geofence_events", "geofence_events_alarm_id_fkey", "alarm_id", "SET NULL"),
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE federation_self (
            singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            hub_id      text NOT NULL CHECK (hub_id ~ '^[a-z][a-z0-9_]{0,39}$'),
            hub_no      integer NOT NULL CHECK (hub_no BETWEEN 0 AND 8191),
            scope       text CHECK (scope ~ '^[0-9]{2,12}$'),
            upstream    text,
            joined_at   timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE federation_members (
            hub_id       text PRIMARY KEY CHECK (hub_id ~ '^[a-z][a-z0-9_]{0,39}$'),
            hub_no       integer NOT NULL UNIQUE CHECK (hub_no BETWEEN 1 AND 8191),
            scope        text NOT NULL CHECK (scope ~ '^[0-9]{2,12}$'),
            subscription text NOT NULL,
            joined_at    timestamptz NOT NULL DEFAULT now()
        );
        CREATE FUNCTION federation_origin() RETURNS text LANGUAGE sql STABLE
            AS $$ SELECT coalesce((SELECT hub_id FROM federation_self), 'local') $$;
        """
    )
    for table in FEDERATED:
        # A constant default first (no table rewrite), then this hub's id for new rows.
        op.execute(f"ALTER TABLE {table} ADD COLUMN origin text NOT NULL DEFAULT 'local'")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN origin SET DEFAULT federation_origin()")
    for table, name, column, on_delete in ALARM_REFS:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {name}, ADD CONSTRAINT {name} "
            f"FOREIGN KEY ({column}) REFERENCES alarms (id) "
            f"ON UPDATE CASCADE ON DELETE {on_delete}"
        )


def downgrade() -> None:
    for table, name, column, on_delete in ALARM_REFS:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {name}, ADD CONSTRAINT {name} "
            f"FOREIGN KEY ({column}) REFERENCES alarms (id) ON DELETE {on_delete}"
        )
    for table in FEDERATED:
        op.execute(f"ALTER TABLE {table} DROP COLUMN origin")
    op.execute(
        "DROP FUNCTION federation_origin(); DROP TABLE federation_members; DROP TABLE federation_self"
    )
