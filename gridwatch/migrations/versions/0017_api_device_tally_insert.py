"""API: device_tally's insert trigger inserts plainly, upserting only when a row was already there.

An INSERT into `devices` adds one tally row per new active device (migration 0014), by one
INSERT ... SELECT from the statement's transition table with ON CONFLICT (id) DO UPDATE. A new
device's id has no tally row (deletes, retirements and TRUNCATE remove them with the device), so
the conflict clause only ever costs: every row goes in by speculative insertion, a look-up of
the key first and a confirmation after. A camera import spent 15-18 ms of its 2,000-row
statements there, 7-11 ms without it (EXPLAIN ANALYZE, 12 alternations, bench inventory).

Now the rows go in by a plain INSERT in a block that catches unique_violation and then does the
0014 upsert: the same rows in the tally either way, and a stale row left for a new device's id
(by hand, or a sync that went wrong) is overwritten as before instead of failing the insert.
"""

from alembic import op

revision = "0017_api_device_tally_insert"
down_revision = "0016_api_alarm_tally"
branch_labels = None
depends_on = None

_UPSERT = """
        INSERT INTO device_tally (id, kind, status, region_code, position, moving)
        SELECT id, kind, status, region_code, position, last_position IS NOT NULL
          FROM device_tally_new WHERE retired_at IS NULL
        ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, status = EXCLUDED.status,
            region_code = EXCLUDED.region_code, position = EXCLUDED.position,
            moving = EXCLUDED.moving;"""

UPGRADE = f"""
CREATE OR REPLACE FUNCTION device_tally_added() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    BEGIN
        INSERT INTO device_tally (id, kind, status, region_code, position, moving)
        SELECT id, kind, status, region_code, position, last_position IS NOT NULL
          FROM device_tally_new WHERE retired_at IS NULL;
    EXCEPTION WHEN unique_violation THEN
        {_UPSERT.strip()}
    END;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION device_tally_added() FROM PUBLIC;
"""

DOWNGRADE = f"""
CREATE OR REPLACE FUNCTION device_tally_added() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    {_UPSERT.strip()}
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION device_tally_added() FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
