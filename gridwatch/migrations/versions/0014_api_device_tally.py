"""API: device_tally, the narrow copy of what the device summary counts, kept by triggers.

`GET /devices/summary` counts the active devices by kind and status in a box and the user's
regions. On `devices` that is a scan of wide rows (each carries its coverage polygon, ~1.3 kB)
that the fleet's heartbeats keep rewriting: 22 MB for 5,544 devices with the demo running, ~6.6
ms of PostgreSQL per summary (bench/RESULTS.md). device_tally holds one small row per active
device (id, kind, status, region, registered position, and whether it reports positions of its
own, `moving`: then the summary reads its last position from devices); a retired or deleted
device has none.

Triggers keep it equal to `devices`, without costing ingest's hot writes anything: a heartbeat
(last_seen, the status it already had) and a moving device's new position change nothing the
tally holds, and the WHEN clause of the update trigger is checked before any function runs.
Inserts and deletes are counted once per statement from their transition tables (an import of
10,000 devices: one INSERT into the tally, not 10,000 function calls). A city hub, whose county
devices arrive by logical replication (the apply worker runs as a replica, where ordinary
triggers stay silent and statement triggers never fire), gets row triggers enabled for replicas
only, and the update trigger is ENABLE ALWAYS; device_tally itself is not published. The
functions are SECURITY DEFINER (the owner's), so the roles that write devices need no rights on
the tally, and nobody may call them directly.
"""

from alembic import op

revision = "0014_api_device_tally"
down_revision = "0013_fed_event_once"
branch_labels = None
depends_on = ("0007_ingest_hot_positions",)

UPGRADE = """
CREATE TABLE IF NOT EXISTS device_tally (
    id          char(20) PRIMARY KEY,
    kind        text NOT NULL,
    status      text NOT NULL,
    region_code char(12),
    position    geometry(Point, 4326),
    moving      boolean NOT NULL DEFAULT false
) WITH (fillfactor = 80);
CREATE INDEX IF NOT EXISTS device_tally_region_idx ON device_tally (region_code);

-- one device row (row triggers: updates everywhere, inserts and deletes at a replica)
CREATE OR REPLACE FUNCTION device_tally_sync() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.id <> NEW.id) THEN
        DELETE FROM device_tally WHERE id = OLD.id;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF NEW.retired_at IS NOT NULL THEN
        DELETE FROM device_tally WHERE id = NEW.id;
    ELSE
        INSERT INTO device_tally (id, kind, status, region_code, position, moving)
        VALUES (NEW.id, NEW.kind, NEW.status, NEW.region_code, NEW.position,
                NEW.last_position IS NOT NULL)
        ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, status = EXCLUDED.status,
            region_code = EXCLUDED.region_code, position = EXCLUDED.position,
            moving = EXCLUDED.moving;
    END IF;
    RETURN NEW;
END $$;

-- the rows one statement inserted / deleted (statement triggers, from transition tables)
CREATE OR REPLACE FUNCTION device_tally_added() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO device_tally (id, kind, status, region_code, position, moving)
    SELECT id, kind, status, region_code, position, last_position IS NOT NULL
      FROM device_tally_new WHERE retired_at IS NULL
    ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, status = EXCLUDED.status,
        region_code = EXCLUDED.region_code, position = EXCLUDED.position,
        moving = EXCLUDED.moving;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION device_tally_removed() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM device_tally t USING device_tally_old o WHERE t.id = o.id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION device_tally_truncate() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    TRUNCATE device_tally;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION device_tally_sync() FROM PUBLIC;
REVOKE ALL ON FUNCTION device_tally_added() FROM PUBLIC;
REVOKE ALL ON FUNCTION device_tally_removed() FROM PUBLIC;
REVOKE ALL ON FUNCTION device_tally_truncate() FROM PUBLIC;

DROP TRIGGER IF EXISTS device_tally_insert ON devices;
CREATE TRIGGER device_tally_insert AFTER INSERT ON devices
    REFERENCING NEW TABLE AS device_tally_new
    FOR EACH STATEMENT EXECUTE FUNCTION device_tally_added();
DROP TRIGGER IF EXISTS device_tally_delete ON devices;
CREATE TRIGGER device_tally_delete AFTER DELETE ON devices
    REFERENCING OLD TABLE AS device_tally_old
    FOR EACH STATEMENT EXECUTE FUNCTION device_tally_removed();
DROP TRIGGER IF EXISTS device_tally_replica_insert ON devices;
CREATE TRIGGER device_tally_replica_insert AFTER INSERT ON devices
    FOR EACH ROW EXECUTE FUNCTION device_tally_sync();
DROP TRIGGER IF EXISTS device_tally_replica_delete ON devices;
CREATE TRIGGER device_tally_replica_delete AFTER DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION device_tally_sync();
DROP TRIGGER IF EXISTS device_tally_update ON devices;
CREATE TRIGGER device_tally_update AFTER UPDATE ON devices
    FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.kind IS DISTINCT FROM NEW.kind
          OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.region_code IS DISTINCT FROM NEW.region_code
          OR (OLD.retired_at IS NULL) IS DISTINCT FROM (NEW.retired_at IS NULL)
          OR (OLD.last_position IS NULL) IS DISTINCT FROM (NEW.last_position IS NULL)
          OR OLD.position IS DISTINCT FROM NEW.position)
    EXECUTE FUNCTION device_tally_sync();
DROP TRIGGER IF EXISTS device_tally_truncate ON devices;
CREATE TRIGGER device_tally_truncate AFTER TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION device_tally_truncate();
ALTER TABLE devices ENABLE REPLICA TRIGGER device_tally_replica_insert;
ALTER TABLE devices ENABLE REPLICA TRIGGER device_tally_replica_delete;
ALTER TABLE devices ENABLE ALWAYS TRIGGER device_tally_update;

TRUNCATE device_tally;
INSERT INTO device_tally (id, kind, status, region_code, position, moving)
SELECT id, kind, status, region_code, position, last_position IS NOT NULL
  FROM devices WHERE retired_at IS NULL;
ANALYZE device_tally;
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS device_tally_truncate ON devices;
DROP TRIGGER IF EXISTS device_tally_update ON devices;
DROP TRIGGER IF EXISTS device_tally_replica_delete ON devices;
DROP TRIGGER IF EXISTS device_tally_replica_insert ON devices;
DROP TRIGGER IF EXISTS device_tally_delete ON devices;
DROP TRIGGER IF EXISTS device_tally_insert ON devices;
DROP FUNCTION IF EXISTS device_tally_truncate();
DROP FUNCTION IF EXISTS device_tally_removed();
DROP FUNCTION IF EXISTS device_tally_added();
DROP FUNCTION IF EXISTS device_tally_sync();
DROP TABLE IF EXISTS device_tally;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
