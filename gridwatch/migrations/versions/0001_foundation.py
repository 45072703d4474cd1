"""Foundation schema: regions, grids, key sites, devices, alarms, dead letters, pending devices, users.

Every geometry is SRID 4326 (WGS 84 / CGCS2000 within centimetres). Lengths and areas are measured
with geography casts or a UTM zone, never in degrees. Later packages add their own migrations on
branches of their own (down_revision = "0001_foundation"); the app upgrades to "heads".
"""

from alembic import op

revision = "0001_foundation"
down_revision = None
branch_labels = ("foundation",)
depends_on = None


UPGRADE = """
CREATE EXTENSION IF NOT EXISTS postgis;

-- Administrative divisions, province (1) to administrative village or community (5).
CREATE TABLE regions (
    code            char(12) PRIMARY KEY CHECK (code ~ '^[0-9]{12}$'),
    level           smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
    name            text NOT NULL,
    parent_code     char(12) REFERENCES regions(code) ON DELETE RESTRICT,
    urban_rural_code smallint CHECK (urban_rural_code IN (111, 112, 121, 122, 123, 210, 220)),
    geom            geometry(MultiPolygon, 4326),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX regions_geom_gix ON regions USING gist (geom);
CREATE INDEX regions_parent_idx ON regions (parent_code);
CREATE INDEX regions_level_idx ON regions (level);

-- Three-level grids: 1 street grid > 2 community grid > 3 base grid.
CREATE TABLE grids (
    id              bigserial PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name            text NOT NULL,
    level           smallint NOT NULL CHECK (level BETWEEN 1 AND 3),
    parent_id       bigint REFERENCES grids(id) ON DELETE RESTRICT,
    region_code     char(12) REFERENCES regions(code),
    households      integer CHECK (households >= 0),
    geom            geometry(MultiPolygon, 4326) NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grids_geom_gix ON grids USING gist (geom);
CREATE INDEX grids_parent_idx ON grids (parent_id);
CREATE INDEX grids_region_idx ON grids (region_code);

CREATE TABLE grid_workers (
    id              bigserial PRIMARY KEY,
    grid_id         bigint NOT NULL REFERENCES grids(id) ON DELETE CASCADE,
    name            text NOT NULL,
    phone           text
);
CREATE INDEX grid_workers_grid_idx ON grid_workers (grid_id);

-- Key sites under electronic watch: main roads, squares, stations, docks, city exits, checkpoints...
CREATE TABLE key_sites (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL,
    region_code     char(12) REFERENCES regions(code),
    geom            geometry(Geometry, 4326) NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX key_sites_geom_gix ON key_sites USING gist (geom);
CREATE INDEX key_sites_region_idx ON key_sites (region_code);

-- Devices by their 20-digit GB/T 28181 id.
CREATE TABLE devices (
    id              char(20) PRIMARY KEY CHECK (id ~ '^[0-9]{20}$'),
    gb_edition      smallint NOT NULL DEFAULT 2016 CHECK (gb_edition IN (2016, 2022)),
    type_code       char(3) NOT NULL,
    kind            text NOT NULL,
    sub_kind        text,
    name            text,
    network_code    smallint CHECK (network_code BETWEEN 0 AND 9),
    industry_code   char(2),
    resource_class  smallint CHECK (resource_class IN (1, 2, 3)),
    vendor          text,
    model           text,
    position        geometry(Point, 4326),
    mount_height_m  real CHECK (mount_height_m >= 0 AND mount_height_m <= 500),
    heading_deg     real CHECK (heading_deg >= 0 AND heading_deg < 360),
    focal_mm        real CHECK (focal_mm > 0),
    focal_max_mm    real CHECK (focal_max_mm > 0),
    sensor_format   text,
    resolution_w    integer CHECK (resolution_w > 0),
    resolution_h    integer CHECK (resolution_h > 0),
    hfov_deg        real CHECK (hfov_deg > 0 AND hfov_deg <= 360),
    range_m         real CHECK (range_m >= 0),
    ptz             boolean NOT NULL DEFAULT false,
    presets         jsonb,
    fov             geometry(Geometry, 4326),
    region_code     char(12) REFERENCES regions(code),
    grid_id         bigint REFERENCES grids(id) ON DELETE SET NULL,
    networked       boolean NOT NULL DEFAULT true,
    stream_url      text,
    status          text NOT NULL DEFAULT 'unknown' CHECK (status IN ('unknown', 'online', 'offline')),
    last_seen       timestamptz,
    heartbeat_s     integer NOT NULL DEFAULT 60 CHECK (heartbeat_s > 0),
    registered_by   text,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz
);
CREATE INDEX devices_position_gix ON devices USING gist (position);
CREATE INDEX devices_fov_gix ON devices USING gist (fov);
CREATE INDEX devices_region_idx ON devices (region_code);
CREATE INDEX devices_grid_idx ON devices (grid_id);
CREATE INDEX devices_kind_idx ON devices (kind);

-- Alarms: at-least-once on the wire, exactly once here thanks to (device_id, msg_id).
CREATE TABLE alarms (
    id              bigserial PRIMARY KEY,
    device_id       char(20) NOT NULL REFERENCES devices(id),
    msg_id          text NOT NULL,
    kind            text NOT NULL,
    severity        smallint NOT NULL CHECK (severity BETWEEN 1 AND 4),
    position        geometry(Point, 4326),
    region_code     char(12) REFERENCES regions(code),
    raised_at       timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    last_raised_at  timestamptz NOT NULL,
    repeat_count    integer NOT NULL DEFAULT 1 CHECK (repeat_count >= 1),
    state           text NOT NULL DEFAULT 'new'
                    CHECK (state IN ('new', 'acknowledged', 'dispatched', 'resolved', 'false_alarm')),
    detail          jsonb,
    acknowledged_by text,
    acknowledged_at timestamptz,
    dispatched_by   text,
    dispatched_at   timestamptz,
    closed_by       text,
    closed_at       timestamptz,
    UNIQUE (device_id, msg_id)
);
CREATE INDEX alarms_position_gix ON alarms USING gist (position);
CREATE INDEX alarms_state_idx ON alarms (state, raised_at DESC);
CREATE INDEX alarms_region_idx ON alarms (region_code, raised_at DESC);

-- Every step of an alarm's lifecycle: who, when, a note.
CREATE TABLE alarm_events (
    id              bigserial PRIMARY KEY,
    alarm_id        bigint NOT NULL REFERENCES alarms(id) ON DELETE CASCADE,
    state           text NOT NULL,
    actor           text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    note            text
);
CREATE INDEX alarm_events_alarm_idx ON alarm_events (alarm_id, at);

-- Cameras that see an alarm's position, best first.
CREATE TABLE alarm_cameras (
    alarm_id        bigint NOT NULL REFERENCES alarms(id) ON DELETE CASCADE,
    device_id       char(20) NOT NULL REFERENCES devices(id),
    rank            smallint NOT NULL,
    relation        text NOT NULL CHECK (relation IN ('covers', 'nearest')),
    distance_m      real,
    PRIMARY KEY (alarm_id, device_id)
);

-- Anything that could not be parsed or validated: raw bytes, topic, time, a readable reason.
CREATE TABLE dead_letters (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    topic           text NOT NULL,
    payload         bytea NOT NULL,
    reason          text NOT NULL,
    source          text NOT NULL DEFAULT 'mqtt'
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at DESC);

-- Messages from unknown (well-formed) device ids, waiting for an installer to adopt them.
CREATE TABLE pending_devices (
    id              char(20) PRIMARY KEY,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    message_count   bigint NOT NULL DEFAULT 1,
    last_topic      text,
    last_payload    bytea,
    position        geometry(Point, 4326)
);

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    username        text NOT NULL UNIQUE CHECK (length(username) BETWEEN 2 AND 64),
    password_hash   text NOT NULL,
    role            text NOT NULL CHECK (role IN ('operator', 'installer', 'auditor', 'admin')),
    full_name       text,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Regions an installer (or any user) is assigned to; a region covers everything below it.
CREATE TABLE user_regions (
    user_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    region_code     char(12) NOT NULL REFERENCES regions(code) ON DELETE CASCADE,
    PRIMARY KEY (user_id, region_code)
);

-- Who changed what, when.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    action          text NOT NULL,
    entity          text NOT NULL,
    entity_id       text,
    detail          jsonb
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS audit_log, user_regions, users, pending_devices, dead_letters,
    alarm_cameras, alarm_events, alarms, devices, key_sites, grid_workers, grids, regions CASCADE;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
