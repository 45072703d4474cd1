"""Ingest schema: alarm message ids, presence intervals, positions, geofences, camera health, events.

Positions are a range-partitioned table (one partition per month plus a DEFAULT partition) with a
BRIN index on time and a (device_id, ts) primary key, so millions of rows stay fast to append,
to scan by time, and to drop by month. `gw_ensure_position_partitions` creates months ahead; the
ingest worker calls it at start and every hour.
"""

from alembic import op

revision = "0003_ingest"
down_revision = "0001_foundation"
branch_labels = ("ingest",)
depends_on = None


UPGRADE = r"""
-- Every alarm message id ever accepted, and the alarm it became or was merged into: redelivery of
-- a merged message must not count twice, so dedup happens here, not on alarms.msg_id alone.
CREATE TABLE alarm_messages (
    device_id       char(20) NOT NULL,
    msg_id          text NOT NULL,
    alarm_id        bigint REFERENCES alarms(id) ON DELETE CASCADE,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, msg_id)
);
CREATE INDEX alarm_messages_alarm_idx ON alarm_messages (alarm_id);
-- Finding the open alarm of a (device, kind) to merge repeats into.
CREATE INDEX alarms_open_merge_idx ON alarms (device_id, kind, last_raised_at DESC)
    WHERE state IN ('new', 'acknowledged', 'dispatched');

-- Online intervals: one row per online period; ended_at NULL while it lasts.
CREATE TABLE device_presence (
    id              bigserial PRIMARY KEY,
    device_id       char(20) NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    end_reason      text CHECK (end_reason IN ('missed_heartbeats', 'last_will', 'offline_state')),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX device_presence_open_uix ON device_presence (device_id) WHERE ended_at IS NULL;
CREATE INDEX device_presence_device_idx ON device_presence (device_id, started_at);
CREATE INDEX device_presence_range_gix ON device_presence
    USING gist (tstzrange(started_at, coalesce(ended_at, 'infinity'::timestamptz)));

-- Latest position of moving devices (trackers, patrol cars) beside the installed position.
ALTER TABLE devices
    ADD COLUMN last_position geometry(Point, 4326),
    ADD COLUMN last_position_at timestamptz,
    ADD COLUMN last_speed_kmh real,
    ADD COLUMN last_heading_deg real;
CREATE INDEX devices_last_position_gix ON devices USING gist (last_position);
-- Presence and position updates rewrite device rows all day: leave room for HOT updates.
ALTER TABLE devices SET (fillfactor = 70);

-- Position history: partitioned by month, BRIN on time, (device_id, ts) makes redelivery harmless.
CREATE TABLE positions (
    device_id       char(20) NOT NULL,
    ts              timestamptz NOT NULL,
    geom            geometry(Point, 4326) NOT NULL,
    speed_kmh       real,
    heading_deg     real,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE positions_default PARTITION OF positions DEFAULT;
CREATE INDEX positions_ts_brin ON positions USING brin (ts) WITH (pages_per_range = 32);

CREATE FUNCTION gw_ensure_position_partitions(start_month date, months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m date := date_trunc('month', start_month)::date;
    created integer := 0;
    name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := format('positions_%s', to_char(m, 'YYYYMM'));
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF positions FOR VALUES FROM (%L) TO (%L)',
                               name, m, (m + interval '1 month')::date);
                created := created + 1;
            EXCEPTION WHEN duplicate_table THEN NULL;  -- another worker made it first
            END;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;
SELECT gw_ensure_position_partitions((now() - interval '1 month')::date, 4);

-- Geofences: polygons, or a buffer in metres around a line (railway); keep_in = a beat a unit
-- must stay inside, keep_out = a place nothing should enter (railway, reservoir).
CREATE TABLE geofences (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('keep_in', 'keep_out')),
    geom            geometry(Geometry, 4326) NOT NULL,
    source_geom     geometry(Geometry, 4326),
    buffer_m        real CHECK (buffer_m IS NULL OR buffer_m > 0),
    device_kinds    text[],
    device_ids      text[],
    alarm_kind      text,
    severity        smallint NOT NULL DEFAULT 2 CHECK (severity BETWEEN 1 AND 4),
    region_code     char(12),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX geofences_geom_gix ON geofences USING gist (geom);

CREATE TABLE geofence_state (
    device_id       char(20) NOT NULL,
    geofence_id     bigint NOT NULL REFERENCES geofences(id) ON DELETE CASCADE,
    inside          boolean NOT NULL,
    since           timestamptz NOT NULL,
    PRIMARY KEY (device_id, geofence_id)
);

CREATE TABLE geofence_events (
    id              bigserial PRIMARY KEY,
    geofence_id     bigint NOT NULL REFERENCES geofences(id) ON DELETE CASCADE,
    device_id       char(20) NOT NULL,
    at              timestamptz NOT NULL,
    transition      text NOT NULL CHECK (transition IN ('enter', 'exit')),
    position        geometry(Point, 4326),
    alarm_id        bigint REFERENCES alarms(id) ON DELETE SET NULL
);
CREATE INDEX geofence_events_device_idx ON geofence_events (device_id, at DESC);

-- Video-quality diagnosis results from the vision workers.
CREATE TABLE camera_health (
    id              bigserial PRIMARY KEY,
    device_id       char(20) NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    ts              timestamptz NOT NULL,
    intact          boolean NOT NULL,
    faults          jsonb NOT NULL DEFAULT '[]'::jsonb,
    metrics         jsonb,
    thumbnail       bytea,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, ts)
);
CREATE INDEX camera_health_device_idx ON camera_health (device_id, ts DESC);
CREATE VIEW camera_health_latest AS
    SELECT DISTINCT ON (device_id) * FROM camera_health ORDER BY device_id, ts DESC;

-- The latest JPEG snapshot of each camera (older ones are not kept).
CREATE TABLE device_snapshots (
    device_id       char(20) PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    at              timestamptz NOT NULL,
    jpeg            bytea NOT NULL
);

-- The live event bus: every row is NOTIFYed on channel gw_events with its id as payload.
CREATE TABLE hub_events (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL,
    region_code     char(12),
    payload         jsonb NOT NULL
);
CREATE INDEX hub_events_region_idx ON hub_events (region_code, id);
CREATE INDEX hub_events_at_brin ON hub_events USING brin (at);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS hub_events, device_snapshots, geofence_events, geofence_state, geofences,
    positions, device_presence, alarm_messages CASCADE;
DROP VIEW IF EXISTS camera_health_latest;
DROP TABLE IF EXISTS camera_health CASCADE;
DROP FUNCTION IF EXISTS gw_ensure_position_partitions(date, integer);
DROP INDEX IF EXISTS alarms_open_merge_idx;
ALTER TABLE devices RESET (fillfactor);
ALTER TABLE devices DROP COLUMN IF EXISTS last_position, DROP COLUMN IF EXISTS last_position_at,
    DROP COLUMN IF EXISTS last_speed_kmh, DROP COLUMN IF EXISTS last_heading_deg;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
