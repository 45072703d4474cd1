"""The database schema as SQLAlchemy 2.0 Core tables: the one description of every table's shape.

The DDL itself lives in the alembic migrations (raw SQL, several branches); these tables must
describe exactly what the migrations build, and tests/foundation/test_schema.py checks that with
alembic's autogenerate comparison against a freshly migrated database. Code that needs a table's
columns, an upsert or a response model derives it from here instead of writing the list again.

Not described here (see SCHEMA_IGNORED): PostGIS's own tables and views, the monthly partitions
of `positions` (created at run time by ingest), the view `camera_health_latest` and alembic's
version table.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    CHAR,
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    desc,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

#: Tables and views in the migrated database that are deliberately not described here.
SCHEMA_IGNORED_TABLES = frozenset(
    {"spatial_ref_sys", "geometry_columns", "geography_columns", "alembic_version"}
)
#: Views the migrations create (read-only shapes, not tables).
SCHEMA_VIEWS = frozenset({"camera_health_latest"})
#: Partitions of `positions`: positions_default and positions_YYYYMM, made by ingest's roll-over.
POSITIONS_PARTITION_PREFIX = "positions_"


regions = Table(
    "regions",
    metadata,
    Column("code", CHAR(12), primary_key=True),
    Column("level", SmallInteger, nullable=False),
    Column("name", Text, nullable=False),
    Column("parent_code", CHAR(12)),
    Column("urban_rural_code", SmallInteger),
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("point", Geometry("POINT", srid=4326, spatial_index=False)),
    Column("retired_at", DateTime(True)),
    Column("origin", Text, nullable=False, server_default=text("federation_origin()")),
    CheckConstraint("code ~ '^[0-9]{12}$'::text", name="regions_code_check"),
    CheckConstraint("level >= 1 AND level <= 5", name="regions_level_check"),
    CheckConstraint(
        "urban_rural_code = ANY (ARRAY[111, 112, 121, 122, 123, 210, 220])",
        name="regions_urban_rural_code_check",
    ),
    ForeignKeyConstraint(
        ["parent_code"], ["regions.code"], ondelete="RESTRICT", name="regions_parent_code_fkey"
    ),
    PrimaryKeyConstraint("code", name="regions_pkey"),
    Index("regions_geom_gix", "geom", postgresql_using="gist"),
    Index("regions_level_idx", "level"),
    Index("regions_parent_idx", "parent_code"),
    Index("regions_point_gix", "point", postgresql_using="gist"),
)

grids = Table(
    "grids",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("parent_id", BigInteger),
    Column("region_code", CHAR(12)),
    Column("households", Integer),
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint("households >= 0", name="grids_households_check"),
    CheckConstraint("level >= 1 AND level <= 3", name="grids_level_check"),
    ForeignKeyConstraint(
        ["parent_id"], ["grids.id"], ondelete="RESTRICT", name="grids_parent_id_fkey"
    ),
    ForeignKeyConstraint(["region_code"], ["regions.code"], name="grids_region_code_fkey"),
    PrimaryKeyConstraint("id", name="grids_pkey"),
    UniqueConstraint("code", name="grids_code_key"),
    Index("grids_geom_gix", "geom", postgresql_using="gist"),
    Index("grids_parent_idx", "parent_id"),
    Index("grids_region_idx", "region_code"),
)

grid_workers = Table(
    "grid_workers",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("grid_id", BigInteger, nullable=False),
    Column("name", Text, nullable=False),
    Column("phone", Text),
    ForeignKeyConstraint(
        ["grid_id"], ["grids.id"], ondelete="CASCADE", name="grid_workers_grid_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="grid_workers_pkey"),
    Index("grid_workers_grid_idx", "grid_id"),
)

key_sites = Table(
    "key_sites",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("region_code", CHAR(12)),
    Column("geom", Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("source_key", Text),
    ForeignKeyConstraint(["region_code"], ["regions.code"], name="key_sites_region_code_fkey"),
    PrimaryKeyConstraint("id", name="key_sites_pkey"),
    Index("key_sites_geom_gix", "geom", postgresql_using="gist"),
    Index("key_sites_region_idx", "region_code"),
    Index("key_sites_source_key_uq", "source_key", unique=True),
)

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("username", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("full_name", Text),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("token_version", Integer, nullable=False, server_default=text("0")),
    CheckConstraint(
        "length(username) >= 2 AND length(username) <= 64", name="users_username_check"
    ),
    CheckConstraint(
        "role = ANY (ARRAY['operator'::text, 'installer'::text, 'auditor'::text, 'admin'::text])",
        name="users_role_check",
    ),
    PrimaryKeyConstraint("id", name="users_pkey"),
    UniqueConstraint("username", name="users_username_key"),
)

user_regions = Table(
    "user_regions",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("region_code", CHAR(12), primary_key=True),
    ForeignKeyConstraint(
        ["region_code"], ["regions.code"], ondelete="CASCADE", name="user_regions_region_code_fkey"
    ),
    ForeignKeyConstraint(
        ["user_id"], ["users.id"], ondelete="CASCADE", name="user_regions_user_id_fkey"
    ),
    PrimaryKeyConstraint("user_id", "region_code", name="user_regions_pkey"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("entity", Text, nullable=False),
    Column("entity_id", Text),
    Column("detail", JSONB),
    PrimaryKeyConstraint("id", name="audit_log_pkey"),
    Index("audit_log_at_idx", desc("at")),
)

devices = Table(
    "devices",
    metadata,
    Column("id", CHAR(20), primary_key=True),
    Column("gb_edition", SmallInteger, nullable=False, server_default=text("2016")),
    Column("type_code", CHAR(3), nullable=False),
    Column("kind", Text, nullable=False),
    Column("sub_kind", Text),
    Column("name", Text),
    Column("network_code", SmallInteger),
    Column("industry_code", CHAR(2)),
    Column("resource_class", SmallInteger),
    Column("vendor", Text),
    Column("model", Text),
    Column("position", Geometry("POINT", srid=4326, spatial_index=False)),
    Column("mount_height_m", REAL),
    Column("heading_deg", REAL),
    Column("focal_mm", REAL),
    Column("focal_max_mm", REAL),
    Column("sensor_format", Text),
    Column("resolution_w", Integer),
    Column("resolution_h", Integer),
    Column("hfov_deg", REAL),
    Column("range_m", REAL),
    Column("ptz", Boolean, nullable=False, server_default=text("false")),
    Column("presets", JSONB),
    Column("fov", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
    Column("region_code", CHAR(12)),
    Column("grid_id", BigInteger),
    Column("networked", Boolean, nullable=False, server_default=text("true")),
    Column("stream_url", Text),
    Column("status", Text, nullable=False, server_default=text("'unknown'::text")),
    Column("last_seen", DateTime(True)),
    Column("heartbeat_s", Integer, nullable=False, server_default=text("60")),
    Column("registered_by", Text),
    Column("registered_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("retired_at", DateTime(True)),
    Column("last_position", Geometry("POINT", srid=4326, spatial_index=False)),
    Column("last_position_at", DateTime(True)),
    Column("last_speed_kmh", REAL),
    Column("last_heading_deg", REAL),
    Column("village_code", CHAR(12)),
    Column("origin", Text, nullable=False, server_default=text("federation_origin()")),
    # the approximate village (village_areas) covering the position when its region is no
    # village; found at registration and when village areas are rebuilt (migration 0013)
    Column("area_village_code", CHAR(12)),
    CheckConstraint("focal_max_mm > 0::double precision", name="devices_focal_max_mm_check"),
    CheckConstraint("focal_mm > 0::double precision", name="devices_focal_mm_check"),
    CheckConstraint("gb_edition = ANY (ARRAY[2016, 2022])", name="devices_gb_edition_check"),
    CheckConstraint(
        "heading_deg >= 0::double precision AND heading_deg < 360::double precision",
        name="devices_heading_deg_check",
    ),
    CheckConstraint("heartbeat_s > 0", name="devices_heartbeat_s_check"),
    CheckConstraint(
        "hfov_deg > 0::double precision AND hfov_deg <= 360::double precision",
        name="devices_hfov_deg_check",
    ),
    CheckConstraint("id ~ '^[0-9]{20}$'::text", name="devices_id_check"),
    CheckConstraint(
        "mount_height_m >= 0::double precision AND mount_height_m <= 500::double precision",
        name="devices_mount_height_m_check",
    ),
    CheckConstraint("network_code >= 0 AND network_code <= 9", name="devices_network_code_check"),
    CheckConstraint("range_m >= 0::double precision", name="devices_range_m_check"),
    CheckConstraint("resolution_h > 0", name="devices_resolution_h_check"),
    CheckConstraint("resolution_w > 0", name="devices_resolution_w_check"),
    CheckConstraint("resource_class = ANY (ARRAY[1, 2, 3])", name="devices_resource_class_check"),
    CheckConstraint(
        "status = ANY (ARRAY['unknown'::text, 'online'::text, 'offline'::text])",
        name="devices_status_check",
    ),
    ForeignKeyConstraint(
        ["grid_id"], ["grids.id"], ondelete="SET NULL", name="devices_grid_id_fkey"
    ),
    ForeignKeyConstraint(["region_code"], ["regions.code"], name="devices_region_code_fkey"),
    ForeignKeyConstraint(["village_code"], ["regions.code"], name="devices_village_code_fkey"),
    PrimaryKeyConstraint("id", name="devices_pkey"),
    Index("devices_fov_gix", "fov", postgresql_using="gist"),
    Index("devices_grid_idx", "grid_id"),
    Index("devices_kind_idx", "kind"),
    Index("devices_position_gix", "position", postgresql_using="gist"),
    Index("devices_region_idx", "region_code"),
    Index("devices_village_idx", "village_code", postgresql_where="(village_code IS NOT NULL)"),
)

# The narrow copy of what GET /devices/summary counts: one row per active device (`moving`: it
# reports positions of its own, the summary reads its last one from devices), kept equal to
# devices by triggers (migration 0014_api_device_tally), replicated county devices at a city too.
device_tally = Table(
    "device_tally",
    metadata,
    Column("id", CHAR(20), primary_key=True),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("region_code", CHAR(12)),
    Column("position", Geometry("POINT", srid=4326, spatial_index=False)),
    Column("moving", Boolean, nullable=False, server_default=text("false")),
    PrimaryKeyConstraint("id", name="device_tally_pkey"),
    Index("device_tally_region_idx", "region_code"),
)

device_registrations = Table(
    "device_registrations",
    metadata,
    Column("device_id", CHAR(20), primary_key=True),
    Column("registration", JSONB, nullable=False),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["device_id"],
        ["devices.id"],
        ondelete="CASCADE",
        name="device_registrations_device_id_fkey",
    ),
    PrimaryKeyConstraint("device_id", name="device_registrations_pkey"),
)

device_mqtt_nonces = Table(
    "device_mqtt_nonces",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("nonce", Text, nullable=False),
    Column("issued_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("issued_by", Text, nullable=False),
    CheckConstraint(
        "length(nonce) >= 16 AND length(nonce) <= 64", name="device_mqtt_nonces_nonce_check"
    ),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="device_mqtt_nonces_device_id_fkey"
    ),
    PrimaryKeyConstraint("device_id", name="device_mqtt_nonces_pkey"),
)

device_photos = Table(
    "device_photos",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("device_id", CHAR(20), nullable=False),
    Column("content_type", Text, nullable=False),
    Column("bytes", LargeBinary, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("note", Text),
    Column("taken_by", Text, nullable=False),
    Column("taken_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint(
        "content_type = ANY (ARRAY['image/jpeg'::text, 'image/png'::text])",
        name="device_photos_content_type_check",
    ),
    CheckConstraint("octet_length(bytes) <= 4194304", name="device_photos_bytes_check"),
    CheckConstraint("octet_length(note) <= 500", name="device_photos_note_check"),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="device_photos_device_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="device_photos_pkey"),
    Index("device_photos_device_idx", "device_id", desc("taken_at")),
)

device_snapshots = Table(
    "device_snapshots",
    metadata,
    Column("device_id", CHAR(20), primary_key=True),
    Column("at", DateTime(True), nullable=False),
    Column("jpeg", LargeBinary, nullable=False),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="device_snapshots_device_id_fkey"
    ),
    PrimaryKeyConstraint("device_id", name="device_snapshots_pkey"),
)

gb_devices = Table(
    "gb_devices",
    metadata,
    Column("device_id", String(20), primary_key=True),
    Column("parent_id", String(20)),
    Column("sip_ha1", Text),
    Column("crs", Text, nullable=False, server_default=text("'wgs84'::text")),
    Column("edition", SmallInteger),
    Column("transport", Text),
    Column("address", Text),
    Column("registered_at", DateTime(True)),
    Column("registered_until", DateTime(True)),
    Column("civil_code", Text),
    Column("channel_status", Text),
    Column("firmware", Text),
    Column("info", JSONB),
    Column("catalog_at", DateTime(True)),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("gateway", Text),
    CheckConstraint(
        "crs = ANY (ARRAY['wgs84'::text, 'gcj02'::text, 'bd09'::text])", name="gb_devices_crs_check"
    ),
    CheckConstraint(
        "edition IS NULL OR (edition = ANY (ARRAY[2016, 2022]))", name="gb_devices_edition_check"
    ),
    CheckConstraint(
        "sip_ha1 IS NULL OR sip_ha1 ~ '^[0-9a-f]{32}$'::text", name="gb_devices_sip_ha1_check"
    ),
    CheckConstraint(
        "transport IS NULL OR (transport = ANY (ARRAY['udp'::text, 'tcp'::text]))",
        name="gb_devices_transport_check",
    ),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="gb_devices_device_id_fkey"
    ),
    ForeignKeyConstraint(
        ["parent_id"], ["devices.id"], ondelete="CASCADE", name="gb_devices_parent_id_fkey"
    ),
    PrimaryKeyConstraint("device_id", name="gb_devices_pkey"),
    Index("gb_devices_gateway", "gateway", postgresql_where="(gateway IS NOT NULL)"),
    Index("gb_devices_parent", "parent_id", postgresql_where="(parent_id IS NOT NULL)"),
    Index(
        "gb_devices_registered",
        "registered_until",
        postgresql_where="(registered_until IS NOT NULL)",
    ),
)

sia_accounts = Table(
    "sia_accounts",
    metadata,
    Column("account", Text, primary_key=True),
    Column("device_id", String(20), nullable=False),
    Column("aes_key", Text),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint("account ~ '^[0-9A-F]{3,16}$'::text", name="sia_accounts_account_check"),
    CheckConstraint(
        "aes_key IS NULL OR (length(aes_key) = ANY (ARRAY[16, 24, 32]))",
        name="sia_accounts_aes_key_check",
    ),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="sia_accounts_device_id_fkey"
    ),
    PrimaryKeyConstraint("account", name="sia_accounts_pkey"),
    Index("sia_accounts_device", "device_id"),
)

pending_devices = Table(
    "pending_devices",
    metadata,
    Column("id", CHAR(20), primary_key=True),
    Column("first_seen", DateTime(True), nullable=False, server_default=text("now()")),
    Column("last_seen", DateTime(True), nullable=False, server_default=text("now()")),
    Column("message_count", BigInteger, nullable=False, server_default=text("1")),
    Column("last_topic", Text),
    Column("last_payload", LargeBinary),
    Column("position", Geometry("POINT", srid=4326, spatial_index=False)),
    PrimaryKeyConstraint("id", name="pending_devices_pkey"),
    Index("pending_devices_last_seen_idx", "last_seen"),
    # expression index: a device id's first 8 digits are its county (the pending list by source)
    Index("pending_devices_source_idx", text('"left"(id::text, 8)')),
)

device_presence = Table(
    "device_presence",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("device_id", CHAR(20), nullable=False),
    Column("started_at", DateTime(True), nullable=False),
    Column("ended_at", DateTime(True)),
    Column("end_reason", Text),
    Column("origin", Text, nullable=False, server_default=text("federation_origin()")),
    CheckConstraint(
        "end_reason = ANY (ARRAY['missed_heartbeats'::text, 'last_will'::text, 'offline_state'::text])",
        name="device_presence_end_reason_check",
    ),
    CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="device_presence_check"),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="device_presence_device_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="device_presence_pkey"),
    Index("device_presence_device_idx", "device_id", "started_at"),
    Index(
        "device_presence_open_uix", "device_id", postgresql_where="(ended_at IS NULL)", unique=True
    ),
    Index(
        "device_presence_range_gix",
        text("tstzrange(started_at, COALESCE(ended_at, 'infinity'::timestamp with time zone))"),
        postgresql_using="gist",
    ),
)

positions = Table(
    "positions",
    metadata,
    Column("device_id", CHAR(20), primary_key=True),
    Column("ts", DateTime(True), primary_key=True),
    Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
    Column("speed_kmh", REAL),
    Column("heading_deg", REAL),
    Column("received_at", DateTime(True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("device_id", "ts", name="positions_pkey"),
    Index(
        "positions_ts_brin",
        "ts",
        postgresql_using="brin",
        postgresql_with={"pages_per_range": "32"},
    ),
    postgresql_partition_by="RANGE (ts)",
)

hub_events = Table(
    "hub_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("kind", Text, nullable=False),
    Column("region_code", CHAR(12)),
    Column("payload", JSONB, nullable=False),
    # a county's event at its city: the county and the event's id there (federation relay)
    Column("origin", Text),
    Column("origin_event_id", BigInteger),
    PrimaryKeyConstraint("id", name="hub_events_pkey"),
    Index("hub_events_at_brin", "at", postgresql_using="brin"),
    Index("hub_events_region_idx", "region_code", "id"),
    Index(
        "hub_events_origin_event_uq",
        "origin",
        "origin_event_id",
        unique=True,
        postgresql_where="(origin_event_id IS NOT NULL)",
    ),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("received_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("topic", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("source", Text, nullable=False, server_default=text("'mqtt'::text")),
    PrimaryKeyConstraint("id", name="dead_letters_pkey"),
    Index("dead_letters_received_idx", desc("received_at")),
)

alarms = Table(
    "alarms",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("device_id", CHAR(20), nullable=False),
    Column("msg_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("position", Geometry("POINT", srid=4326, spatial_index=False)),
    Column("region_code", CHAR(12)),
    Column("raised_at", DateTime(True), nullable=False),
    Column("received_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("last_raised_at", DateTime(True), nullable=False),
    Column("repeat_count", Integer, nullable=False, server_default=text("1")),
    Column("state", Text, nullable=False, server_default=text("'new'::text")),
    Column("detail", JSONB),
    Column("acknowledged_by", Text),
    Column("acknowledged_at", DateTime(True)),
    Column("dispatched_by", Text),
    Column("dispatched_at", DateTime(True)),
    Column("closed_by", Text),
    Column("closed_at", DateTime(True)),
    Column("outside_region", Boolean),
    Column("origin", Text, nullable=False, server_default=text("federation_origin()")),
    CheckConstraint("repeat_count >= 1", name="alarms_repeat_count_check"),
    CheckConstraint("severity >= 1 AND severity <= 4", name="alarms_severity_check"),
    CheckConstraint(
        "state = ANY (ARRAY['new'::text, 'acknowledged'::text, 'dispatched'::text, 'resolved'::text, 'false_alarm'::text])",
        name="alarms_state_check",
    ),
    ForeignKeyConstraint(["device_id"], ["devices.id"], name="alarms_device_id_fkey"),
    ForeignKeyConstraint(["region_code"], ["regions.code"], name="alarms_region_code_fkey"),
    PrimaryKeyConstraint("id", name="alarms_pkey"),
    UniqueConstraint("device_id", "msg_id", name="alarms_device_id_msg_id_key"),
    Index(
        "alarms_open_merge_idx",
        "device_id",
        "kind",
        desc("last_raised_at"),
        postgresql_where="(state = ANY (ARRAY['new'::text, 'acknowledged'::text, 'dispatched'::text]))",
    ),
    # the operators' queue: open alarms, most severe first, then oldest (migration 0015)
    Index(
        "alarms_open_queue_idx",
        "severity",
        "raised_at",
        "id",
        postgresql_where="(state = ANY (ARRAY['new'::text, 'acknowledged'::text, 'dispatched'::text]))",
    ),
    Index("alarms_position_gix", "position", postgresql_using="gist"),
    Index("alarms_region_idx", "region_code", desc("raised_at")),
    Index("alarms_state_idx", "state", desc("raised_at")),
)

# The alarms counted by region, state and severity (GET /alarms's counts): signed deltas appended
# by triggers on alarms, folded into one `rolled` row per key by alarm_tally_compact() (migration
# 0016_api_alarm_tally); '' is the region of an alarm without one.
alarm_tally = Table(
    "alarm_tally",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("region_code", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("rolled", Boolean, nullable=False, server_default=text("false")),
    PrimaryKeyConstraint("id", name="alarm_tally_pkey"),
    Index("alarm_tally_region_idx", "region_code"),
    Index("alarm_tally_delta_idx", "id", postgresql_where="(NOT rolled)"),
)

alarm_events = Table(
    "alarm_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("alarm_id", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("note", Text),
    Column("origin", Text, nullable=False, server_default=text("federation_origin()")),
    ForeignKeyConstraint(
        ["alarm_id"],
        ["alarms.id"],
        onupdate="CASCADE",
        ondelete="CASCADE",
        name="alarm_events_alarm_id_fkey",
    ),
    PrimaryKeyConstraint("id", name="alarm_events_pkey"),
    Index("alarm_events_alarm_idx", "alarm_id", "at"),
)

alarm_cameras = Table(
    "alarm_cameras",
    metadata,
    Column("alarm_id", BigInteger, primary_key=True),
    Column("device_id", CHAR(20), primary_key=True),
    Column("rank", SmallInteger, nullable=False),
    Column("relation", Text, nullable=False),
    Column("distance_m", REAL),
    Column("origin", Text, nullable=False, server_default=text("federation_origin()")),
    CheckConstraint(
        "relation = ANY (ARRAY['covers'::text, 'nearest'::text])",
        name="alarm_cameras_relation_check",
    ),
    ForeignKeyConstraint(
        ["alarm_id"],
        ["alarms.id"],
        onupdate="CASCADE",
        ondelete="CASCADE",
        name="alarm_cameras_alarm_id_fkey",
    ),
    ForeignKeyConstraint(["device_id"], ["devices.id"], name="alarm_cameras_device_id_fkey"),
    PrimaryKeyConstraint("alarm_id", "device_id", name="alarm_cameras_pkey"),
    Index("alarm_cameras_device_idx", "device_id"),
)

alarm_messages = Table(
    "alarm_messages",
    metadata,
    Column("device_id", CHAR(20), primary_key=True),
    Column("msg_id", Text, primary_key=True),
    Column("alarm_id", BigInteger),
    Column("received_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["alarm_id"],
        ["alarms.id"],
        onupdate="CASCADE",
        ondelete="CASCADE",
        name="alarm_messages_alarm_id_fkey",
    ),
    PrimaryKeyConstraint("device_id", "msg_id", name="alarm_messages_pkey"),
    Index("alarm_messages_alarm_idx", "alarm_id"),
)

geofences = Table(
    "geofences",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("geom", Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False),
    Column("source_geom", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
    Column("buffer_m", REAL),
    Column("device_kinds", ARRAY(Text())),
    Column("device_ids", ARRAY(Text())),
    Column("alarm_kind", Text),
    Column("severity", SmallInteger, nullable=False, server_default=text("2")),
    Column("region_code", CHAR(12)),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint(
        "buffer_m IS NULL OR buffer_m > 0::double precision", name="geofences_buffer_m_check"
    ),
    CheckConstraint(
        "kind = ANY (ARRAY['keep_in'::text, 'keep_out'::text])", name="geofences_kind_check"
    ),
    CheckConstraint("severity >= 1 AND severity <= 4", name="geofences_severity_check"),
    PrimaryKeyConstraint("id", name="geofences_pkey"),
    Index("geofences_geom_gix", "geom", postgresql_using="gist"),
)

geofence_state = Table(
    "geofence_state",
    metadata,
    Column("device_id", CHAR(20), primary_key=True),
    Column("geofence_id", BigInteger, primary_key=True),
    Column("inside", Boolean, nullable=False),
    Column("since", DateTime(True), nullable=False),
    ForeignKeyConstraint(
        ["geofence_id"],
        ["geofences.id"],
        ondelete="CASCADE",
        name="geofence_state_geofence_id_fkey",
    ),
    PrimaryKeyConstraint("device_id", "geofence_id", name="geofence_state_pkey"),
)

geofence_events = Table(
    "geofence_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("geofence_id", BigInteger, nullable=False),
    Column("device_id", CHAR(20), nullable=False),
    Column("at", DateTime(True), nullable=False),
    Column("transition", Text, nullable=False),
    Column("position", Geometry("POINT", srid=4326, spatial_index=False)),
    Column("alarm_id", BigInteger),
    CheckConstraint(
        "transition = ANY (ARRAY['enter'::text, 'exit'::text])",
        name="geofence_events_transition_check",
    ),
    ForeignKeyConstraint(
        ["alarm_id"],
        ["alarms.id"],
        onupdate="CASCADE",
        ondelete="SET NULL",
        name="geofence_events_alarm_id_fkey",
    ),
    ForeignKeyConstraint(
        ["geofence_id"],
        ["geofences.id"],
        ondelete="CASCADE",
        name="geofence_events_geofence_id_fkey",
    ),
    PrimaryKeyConstraint("id", name="geofence_events_pkey"),
    Index("geofence_events_device_idx", "device_id", desc("at")),
)

camera_health = Table(
    "camera_health",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("device_id", CHAR(20), nullable=False),
    Column("ts", DateTime(True), nullable=False),
    Column("intact", Boolean, nullable=False),
    Column("faults", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("metrics", JSONB),
    Column("thumbnail", LargeBinary),
    Column("received_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("origin", Text, nullable=False, server_default=text("federation_origin()")),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="camera_health_device_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="camera_health_pkey"),
    UniqueConstraint("device_id", "ts", name="camera_health_device_id_ts_key"),
    Index("camera_health_device_idx", "device_id", desc("ts")),
)

vision_cameras = Table(
    "vision_cameras",
    metadata,
    Column("device_id", CHAR(20), primary_key=True),
    Column("config", JSONB, nullable=False),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="vision_cameras_device_id_fkey"
    ),
    PrimaryKeyConstraint("device_id", name="vision_cameras_pkey"),
)

vision_references = Table(
    "vision_references",
    metadata,
    Column("device_id", CHAR(20), primary_key=True),
    Column("reference", LargeBinary, nullable=False),
    Column("learned_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("approved_by", Text),
    Column("approved_at", DateTime(True)),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="vision_references_device_id_fkey"
    ),
    PrimaryKeyConstraint("device_id", name="vision_references_pkey"),
)

inspection_rounds = Table(
    "inspection_rounds",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("region_code", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'running'::text")),
    Column("started_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("finished_at", DateTime(True)),
    Column("total", Integer, nullable=False, server_default=text("0")),
    CheckConstraint(
        "status = ANY (ARRAY['running'::text, 'done'::text, 'interrupted'::text])",
        name="inspection_rounds_status_check",
    ),
    CheckConstraint("total >= 0", name="inspection_rounds_total_check"),
    PrimaryKeyConstraint("id", name="inspection_rounds_pkey"),
    Index("inspection_rounds_region_idx", "region_code", desc("started_at")),
)

inspection_results = Table(
    "inspection_results",
    metadata,
    Column("round_id", BigInteger, primary_key=True),
    Column("device_id", CHAR(20), primary_key=True),
    Column("ts", DateTime(True), nullable=False, server_default=text("now()")),
    Column("intact", Boolean, nullable=False),
    Column("faults", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("thumbnail", LargeBinary),
    Column("error", Text),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="inspection_results_device_id_fkey"
    ),
    ForeignKeyConstraint(
        ["round_id"],
        ["inspection_rounds.id"],
        ondelete="CASCADE",
        name="inspection_results_round_id_fkey",
    ),
    PrimaryKeyConstraint("round_id", "device_id", name="inspection_results_pkey"),
    Index("inspection_results_faulty_idx", "round_id", postgresql_where="(NOT intact)"),
)

natural_villages = Table(
    "natural_villages",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("local_code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("village_code", CHAR(12)),
    Column("households", Integer),
    Column("geom", Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False),
    Column("source", Text),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint("households >= 0", name="natural_villages_households_check"),
    ForeignKeyConstraint(
        ["village_code"],
        ["regions.code"],
        ondelete="SET NULL",
        name="natural_villages_village_code_fkey",
    ),
    PrimaryKeyConstraint("id", name="natural_villages_pkey"),
    UniqueConstraint("local_code", name="natural_villages_local_code_key"),
    Index("natural_villages_geom_gix", "geom", postgresql_using="gist"),
    Index("natural_villages_village_idx", "village_code"),
)

village_areas = Table(
    "village_areas",
    metadata,
    Column("village_code", CHAR(12), primary_key=True),
    Column("county_code", CHAR(12), nullable=False),
    Column("clip", Text, nullable=False),
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
    Column("built_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["village_code"],
        ["regions.code"],
        ondelete="CASCADE",
        name="village_areas_village_code_fkey",
    ),
    PrimaryKeyConstraint("village_code", name="village_areas_pkey"),
    Index("village_areas_county_idx", "county_code"),
    Index("village_areas_geom_gix", "geom", postgresql_using="gist"),
)

# Active region boundaries cut into pieces of at most 64 vertices (ST_Subdivide) for locating
# points; kept equal to regions by triggers (migration 0011_geo_region_parts).
village_area_parts = Table(
    "village_area_parts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("village_code", CHAR(12), nullable=False),
    Column("geom", Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False),
    PrimaryKeyConstraint("id", name="village_area_parts_pkey"),
    Index("village_area_parts_code_idx", "village_code"),
    Index("village_area_parts_geom_gix", "geom", postgresql_using="gist"),
)

region_parts = Table(
    "region_parts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("code", CHAR(12), nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("geom", Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False),
    PrimaryKeyConstraint("id", name="region_parts_pkey"),
    Index("region_parts_code_idx", "code"),
    Index("region_parts_geom_gix", "geom", postgresql_using="gist"),
)

intersections = Table(
    "intersections",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("source_key", Text, nullable=False),
    Column("name", Text),
    Column("natural_village_id", BigInteger),
    Column("is_main", Boolean, nullable=False, server_default=text("true")),
    Column("degree", SmallInteger),
    Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["natural_village_id"],
        ["natural_villages.id"],
        ondelete="SET NULL",
        name="intersections_natural_village_id_fkey",
    ),
    PrimaryKeyConstraint("id", name="intersections_pkey"),
    UniqueConstraint("source_key", name="intersections_source_key_key"),
    Index("intersections_geom_gix", "geom", postgresql_using="gist"),
    Index("intersections_nv_idx", "natural_village_id"),
)

intersection_views = Table(
    "intersection_views",
    metadata,
    Column("intersection_id", BigInteger, primary_key=True),
    Column("device_id", CHAR(20), primary_key=True),
    ForeignKeyConstraint(
        ["device_id"], ["devices.id"], ondelete="CASCADE", name="intersection_views_device_id_fkey"
    ),
    ForeignKeyConstraint(
        ["intersection_id"],
        ["intersections.id"],
        ondelete="CASCADE",
        name="intersection_views_intersection_id_fkey",
    ),
    PrimaryKeyConstraint("intersection_id", "device_id", name="intersection_views_pkey"),
    Index("intersection_views_device_idx", "device_id"),
)

roads = Table(
    "roads",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("source_key", Text, nullable=False),
    Column("name", Text),
    Column("class", Text, nullable=False, server_default=text("'unclassified'::text")),
    Column("geom", Geometry("MULTILINESTRING", srid=4326, spatial_index=False), nullable=False),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("id", name="roads_pkey"),
    UniqueConstraint("source_key", name="roads_source_key_key"),
    Index("roads_geom_gix", "geom", postgresql_using="gist"),
)

railways = Table(
    "railways",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("source_key", Text, nullable=False),
    Column("name", Text),
    Column("geom", Geometry("MULTILINESTRING", srid=4326, spatial_index=False), nullable=False),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("id", name="railways_pkey"),
    UniqueConstraint("source_key", name="railways_source_key_key"),
    Index("railways_geom_gix", "geom", postgresql_using="gist"),
)

import_files = Table(
    "import_files",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", CHAR(64), nullable=False),
    Column("crs", Text),
    Column("actor", Text, nullable=False),
    Column("imported_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("report", JSONB, nullable=False),
    PrimaryKeyConstraint("id", name="import_files_pkey"),
    Index("import_files_hash_idx", "kind", "sha256"),
)

audit_runs = Table(
    "audit_runs",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("region_code", CHAR(12), nullable=False),
    Column("rule_pack", Text, nullable=False),
    Column("rule_pack_sha256", CHAR(64), nullable=False),
    Column("as_of", DateTime(True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("started_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("finished_at", DateTime(True)),
    Column("summary", JSONB),
    PrimaryKeyConstraint("id", name="audit_runs_pkey"),
    Index("audit_runs_region_idx", "region_code", desc("started_at")),
)

audit_results = Table(
    "audit_results",
    metadata,
    Column("run_id", BigInteger, primary_key=True),
    Column("rule", Text, primary_key=True),
    Column("unit_kind", Text, primary_key=True),
    Column("unit_id", Text, primary_key=True),
    Column("region_code", CHAR(12)),
    Column("passed", Boolean, nullable=False),
    Column("value", Double(53)),
    Column("target", Double(53)),
    Column("reason", Text),
    Column("basis", Text),
    ForeignKeyConstraint(
        ["run_id"], ["audit_runs.id"], ondelete="CASCADE", name="audit_results_run_id_fkey"
    ),
    PrimaryKeyConstraint("run_id", "rule", "unit_kind", "unit_id", name="audit_results_pkey"),
    Index("audit_results_failed_idx", "run_id", "rule", postgresql_where="(NOT passed)"),
)

audit_findings = Table(
    "audit_findings",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("run_id", BigInteger, nullable=False),
    Column("rule", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("unit_id", Text),
    Column("area_m2", Double(53)),
    Column("detail", JSONB),
    Column("geom", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
    ForeignKeyConstraint(
        ["run_id"], ["audit_runs.id"], ondelete="CASCADE", name="audit_findings_run_id_fkey"
    ),
    PrimaryKeyConstraint("id", name="audit_findings_pkey"),
    Index("audit_findings_geom_gix", "geom", postgresql_using="gist"),
    Index("audit_findings_run_idx", "run_id", "rule"),
)

village_compliance = Table(
    "village_compliance",
    metadata,
    Column("village_code", CHAR(12), primary_key=True),
    Column("cameras", Integer, nullable=False),
    Column("points", Integer, nullable=False),
    Column("offline", Integer, nullable=False),
    Column("points_required", Integer, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("natural_villages", Integer, nullable=False, server_default=text("0")),
    Column("natural_villages_ok", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["village_code"],
        ["regions.code"],
        ondelete="CASCADE",
        name="village_compliance_village_code_fkey",
    ),
    PrimaryKeyConstraint("village_code", name="village_compliance_pkey"),
)

natural_village_compliance = Table(
    "natural_village_compliance",
    metadata,
    Column("natural_village_id", BigInteger, primary_key=True),
    Column("village_code", CHAR(12)),
    Column("main_intersections", Integer, nullable=False),
    Column("points", Integer, nullable=False),
    Column("points_required", Integer, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["natural_village_id"],
        ["natural_villages.id"],
        ondelete="CASCADE",
        name="natural_village_compliance_natural_village_id_fkey",
    ),
    PrimaryKeyConstraint("natural_village_id", name="natural_village_compliance_pkey"),
    Index("natural_village_compliance_village_idx", "village_code"),
)

grid_compliance = Table(
    "grid_compliance",
    metadata,
    Column("grid_id", BigInteger, primary_key=True),
    Column("cameras", Integer, nullable=False),
    Column("workers", Integer, nullable=False),
    Column("households", Integer),
    Column("passed", Boolean, nullable=False),
    Column("reasons", ARRAY(Text()), nullable=False, server_default=text("'{}'::text[]")),
    Column("updated_at", DateTime(True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["grid_id"], ["grids.id"], ondelete="CASCADE", name="grid_compliance_grid_id_fkey"
    ),
    PrimaryKeyConstraint("grid_id", name="grid_compliance_pkey"),
)

api_audit_jobs = Table(
    "api_audit_jobs",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("region_code", CHAR(12), nullable=False),
    Column("as_of", DateTime(True)),
    Column("requested_by", Text, nullable=False),
    Column("requested_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("status", Text, nullable=False, server_default=text("'running'::text")),
    Column("error", Text),
    Column("run_id", BigInteger),
    Column("finished_at", DateTime(True)),
    Column("report", JSONB),
    Column("suggestions", JSONB),
    CheckConstraint(
        "status = ANY (ARRAY['running'::text, 'done'::text, 'failed'::text])",
        name="api_audit_jobs_status_check",
    ),
    ForeignKeyConstraint(
        ["region_code"],
        ["regions.code"],
        ondelete="CASCADE",
        name="api_audit_jobs_region_code_fkey",
    ),
    PrimaryKeyConstraint("id", name="api_audit_jobs_pkey"),
    Index("api_audit_jobs_region_idx", "region_code", desc("requested_at")),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("key", Text, primary_key=True),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    Column("last_at", DateTime(True), nullable=False, server_default=text("now()")),
    Column("locked_until", DateTime(True)),
    CheckConstraint("length(key) <= 200", name="login_failures_key_check"),
    PrimaryKeyConstraint("key", name="login_failures_pkey"),
)


federation_self = Table(
    "federation_self",
    metadata,
    Column("singleton", Boolean, primary_key=True, server_default=text("true")),
    Column("hub_id", Text, nullable=False),
    Column("hub_no", Integer, nullable=False),
    Column("scope", Text),
    Column("upstream", Text),
    Column("joined_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint("singleton", name="federation_self_singleton_check"),
    CheckConstraint("hub_id ~ '^[a-z][a-z0-9_]{0,39}$'::text", name="federation_self_hub_id_check"),
    CheckConstraint("hub_no >= 0 AND hub_no <= 8191", name="federation_self_hub_no_check"),
    CheckConstraint("scope ~ '^[0-9]{2,12}$'::text", name="federation_self_scope_check"),
    PrimaryKeyConstraint("singleton", name="federation_self_pkey"),
)

federation_members = Table(
    "federation_members",
    metadata,
    Column("hub_id", Text, primary_key=True),
    Column("hub_no", Integer, nullable=False),
    Column("scope", Text, nullable=False),
    Column("subscription", Text, nullable=False),
    Column("joined_at", DateTime(True), nullable=False, server_default=text("now()")),
    CheckConstraint(
        "hub_id ~ '^[a-z][a-z0-9_]{0,39}$'::text", name="federation_members_hub_id_check"
    ),
    CheckConstraint("hub_no >= 1 AND hub_no <= 8191", name="federation_members_hub_no_check"),
    CheckConstraint("scope ~ '^[0-9]{2,12}$'::text", name="federation_members_scope_check"),
    PrimaryKeyConstraint("hub_id", name="federation_members_pkey"),
    UniqueConstraint("hub_no", name="federation_members_hub_no_key"),
)
