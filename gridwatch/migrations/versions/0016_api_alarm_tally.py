"""API: alarm_tally, the alarms counted by region, state and severity, kept by triggers.

`GET /alarms` answers with counts by state and severity over every matching alarm and the open
total in the reader's regions. Counted on `alarms`, that reads every alarm in scope: with the
demo's fleet raising ~500 alarms a minute that nobody closes (18,600 open), ~16 ms of PostgreSQL
per queue page, growing with the backlog (bench/RESULTS.md). alarm_tally holds signed deltas of
those counts, (region_code, state, severity, n), so the same counts are a sum over a few rows
per region, whatever the backlog.

Writers never wait on a counter row: the triggers only INSERT deltas (no row is updated, none
is locked, no unique key to check), one statement per statement on `alarms` (transition tables:
a batch of ingest's new alarms adds one row per region, state and severity in it; a merge that
changes no state, severity or region adds none). alarm_tally_compact() folds the deltas of the
keys that got new ones into one `rolled` row per key, in one transaction: a reader sees the
deltas or their sum, never both; deltas committed meanwhile are not in its snapshot and stay.
Ingest calls it every few seconds (ingest.worker), so a read sums about one row per key.

An alarm without a region counts under '' (a whole-hub reader sees it, no region's range holds
it). At a city hub, county alarms arrive by logical replication, where statement triggers never
fire: row triggers enabled for replicas only do the same there (the update one only when the
state, severity or region changed). The functions are SECURITY DEFINER (the owner's), so the
roles that write alarms need no rights on the tally, and nobody else may call them.
"""

from alembic import op

revision = "0016_api_alarm_tally"
down_revision = "0015_api_alarm_queue_idx"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE IF NOT EXISTS alarm_tally (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region_code text NOT NULL,
    state       text NOT NULL,
    severity    smallint NOT NULL,
    n           bigint NOT NULL,
    rolled      boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS alarm_tally_region_idx ON alarm_tally (region_code);
CREATE INDEX IF NOT EXISTS alarm_tally_delta_idx ON alarm_tally (id) WHERE NOT rolled;

CREATE OR REPLACE FUNCTION alarm_tally_added() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO alarm_tally (region_code, state, severity, n)
    SELECT coalesce(region_code, ''), state, severity, count(*)
      FROM alarm_tally_new GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION alarm_tally_removed() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO alarm_tally (region_code, state, severity, n)
    SELECT coalesce(region_code, ''), state, severity, -count(*)
      FROM alarm_tally_old GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION alarm_tally_changed() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO alarm_tally (region_code, state, severity, n)
    SELECT r, s, v, sum(d) FROM (
        SELECT coalesce(region_code, '') AS r, state AS s, severity AS v, -1 AS d
          FROM alarm_tally_old
        UNION ALL
        SELECT coalesce(region_code, ''), state, severity, 1 FROM alarm_tally_new
    ) x GROUP BY r, s, v HAVING sum(d) <> 0;
    RETURN NULL;
END $$;

-- one alarm row, at a replica (logical replication fires no statement triggers)
CREATE OR REPLACE FUNCTION alarm_tally_row() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO alarm_tally (region_code, state, severity, n)
        VALUES (coalesce(OLD.region_code, ''), OLD.state, OLD.severity, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO alarm_tally (region_code, state, severity, n)
        VALUES (coalesce(NEW.region_code, ''), NEW.state, NEW.severity, 1);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION alarm_tally_truncate() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    TRUNCATE alarm_tally;
    RETURN NULL;
END $$;

-- the deltas of every key that has new ones, summed into one rolled row per key; how many rows
-- were folded (0 when another compaction is running: it does the same)
CREATE OR REPLACE FUNCTION alarm_tally_compact() RETURNS bigint LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('alarm_tally_compact')) THEN
        RETURN 0;
    END IF;
    WITH touched AS (
        SELECT DISTINCT region_code, state, severity FROM alarm_tally WHERE NOT rolled
    ), gone AS (
        DELETE FROM alarm_tally t USING touched k
         WHERE t.region_code = k.region_code AND t.state = k.state AND t.severity = k.severity
        RETURNING t.region_code, t.state, t.severity, t.n
    ), kept AS (
        INSERT INTO alarm_tally (region_code, state, severity, n, rolled)
        SELECT region_code, state, severity, sum(n), true FROM gone
         GROUP BY region_code, state, severity HAVING sum(n) <> 0
    )
    SELECT count(*) INTO folded FROM gone;
    RETURN folded;
END $$;

REVOKE ALL ON FUNCTION alarm_tally_added() FROM PUBLIC;
REVOKE ALL ON FUNCTION alarm_tally_removed() FROM PUBLIC;
REVOKE ALL ON FUNCTION alarm_tally_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION alarm_tally_row() FROM PUBLIC;
REVOKE ALL ON FUNCTION alarm_tally_truncate() FROM PUBLIC;
REVOKE ALL ON FUNCTION alarm_tally_compact() FROM PUBLIC;

DROP TRIGGER IF EXISTS alarm_tally_insert ON alarms;
CREATE TRIGGER alarm_tally_insert AFTER INSERT ON alarms
    REFERENCING NEW TABLE AS alarm_tally_new
    FOR EACH STATEMENT EXECUTE FUNCTION alarm_tally_added();
DROP TRIGGER IF EXISTS alarm_tally_delete ON alarms;
CREATE TRIGGER alarm_tally_delete AFTER DELETE ON alarms
    REFERENCING OLD TABLE AS alarm_tally_old
    FOR EACH STATEMENT EXECUTE FUNCTION alarm_tally_removed();
DROP TRIGGER IF EXISTS alarm_tally_update ON alarms;
CREATE TRIGGER alarm_tally_update AFTER UPDATE ON alarms
    REFERENCING OLD TABLE AS alarm_tally_old NEW TABLE AS alarm_tally_new
    FOR EACH STATEMENT EXECUTE FUNCTION alarm_tally_changed();
DROP TRIGGER IF EXISTS alarm_tally_truncate ON alarms;
CREATE TRIGGER alarm_tally_truncate AFTER TRUNCATE ON alarms
    FOR EACH STATEMENT EXECUTE FUNCTION alarm_tally_truncate();
DROP TRIGGER IF EXISTS alarm_tally_replica_insert ON alarms;
CREATE TRIGGER alarm_tally_replica_insert AFTER INSERT ON alarms
    FOR EACH ROW EXECUTE FUNCTION alarm_tally_row();
DROP TRIGGER IF EXISTS alarm_tally_replica_delete ON alarms;
CREATE TRIGGER alarm_tally_replica_delete AFTER DELETE ON alarms
    FOR EACH ROW EXECUTE FUNCTION alarm_tally_row();
DROP TRIGGER IF EXISTS alarm_tally_replica_update ON alarms;
CREATE TRIGGER alarm_tally_replica_update AFTER UPDATE ON alarms
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.severity IS DISTINCT FROM NEW.severity
          OR OLD.region_code IS DISTINCT FROM NEW.region_code)
    EXECUTE FUNCTION alarm_tally_row();
ALTER TABLE alarms ENABLE REPLICA TRIGGER alarm_tally_replica_insert;
ALTER TABLE alarms ENABLE REPLICA TRIGGER alarm_tally_replica_delete;
ALTER TABLE alarms ENABLE REPLICA TRIGGER alarm_tally_replica_update;

LOCK TABLE alarms IN SHARE MODE;
TRUNCATE alarm_tally;
INSERT INTO alarm_tally (region_code, state, severity, n, rolled)
SELECT coalesce(region_code, ''), state, severity, count(*), true
  FROM alarms GROUP BY 1, 2, 3;
ANALYZE alarm_tally;
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS alarm_tally_replica_update ON alarms;
DROP TRIGGER IF EXISTS alarm_tally_replica_delete ON alarms;
DROP TRIGGER IF EXISTS alarm_tally_replica_insert ON alarms;
DROP TRIGGER IF EXISTS alarm_tally_truncate ON alarms;
DROP TRIGGER IF EXISTS alarm_tally_update ON alarms;
DROP TRIGGER IF EXISTS alarm_tally_delete ON alarms;
DROP TRIGGER IF EXISTS alarm_tally_insert ON alarms;
DROP FUNCTION IF EXISTS alarm_tally_compact();
DROP FUNCTION IF EXISTS alarm_tally_truncate();
DROP FUNCTION IF EXISTS alarm_tally_row();
DROP FUNCTION IF EXISTS alarm_tally_changed();
DROP FUNCTION IF EXISTS alarm_tally_removed();
DROP FUNCTION IF EXISTS alarm_tally_added();
DROP TABLE IF EXISTS alarm_tally;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
