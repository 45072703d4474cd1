"""Geo schema: natural villages, intersections, roads, railways, import log, audits, live compliance.

All geometries are SRID 4326 with GiST indexes; lengths and areas are measured in metres with
geography casts or EPSG:32650 in the queries, never in degrees.
"""

from alembic import op

revision = "0004_geo"
down_revision = "0001_foundation"
branch_labels = ("geo",)
depends_on = None


UPGRADE = """
-- The registration as the installer gave it (lens, presets, fisheye, hfov override...), so an
-- update can merge changes into it; devices holds what was derived from it.
CREATE TABLE device_registrations (
    device_id       char(20) PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    registration    jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Stable source keys so boundary/key-site re-imports update in place instead of duplicating.
ALTER TABLE key_sites ADD COLUMN IF NOT EXISTS source_key text;
CREATE UNIQUE INDEX IF NOT EXISTS key_sites_source_key_uq ON key_sites (source_key);

-- Natural villages (自然村): no national code, so the hub gives each a local code.
CREATE TABLE natural_villages (
    id              bigserial PRIMARY KEY,
    local_code      text NOT NULL UNIQUE,
    name            text NOT NULL,
    village_code    char(12) REFERENCES regions(code) ON DELETE SET NULL,
    households      integer CHECK (households >= 0),
    geom            geometry(Geometry, 4326) NOT NULL,
    source          text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX natural_villages_geom_gix ON natural_villages USING gist (geom);
CREATE INDEX natural_villages_village_idx ON natural_villages (village_code);

-- Intersections; the main ones (主要路口) are what the natural-village rule counts.
CREATE TABLE intersections (
    id              bigserial PRIMARY KEY,
    source_key      text NOT NULL UNIQUE,
    name            text,
    natural_village_id bigint REFERENCES natural_villages(id) ON DELETE SET NULL,
    is_main         boolean NOT NULL DEFAULT true,
    degree          smallint,
    geom            geometry(Point, 4326) NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intersections_geom_gix ON intersections USING gist (geom);
CREATE INDEX intersections_nv_idx ON intersections (natural_village_id);

CREATE TABLE roads (
    id              bigserial PRIMARY KEY,
    source_key      text NOT NULL UNIQUE,
    name            text,
    class           text NOT NULL DEFAULT 'unclassified',
    geom            geometry(MultiLineString, 4326) NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX roads_geom_gix ON roads USING gist (geom);

CREATE TABLE railways (
    id              bigserial PRIMARY KEY,
    source_key      text NOT NULL UNIQUE,
    name            text,
    geom            geometry(MultiLineString, 4326) NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX railways_geom_gix ON railways USING gist (geom);

-- Every import: which file (by content hash), what it did, every rejected row.
CREATE TABLE import_files (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL,
    path            text NOT NULL,
    sha256          char(64) NOT NULL,
    crs             text,
    actor           text NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    report          jsonb NOT NULL
);
CREATE INDEX import_files_hash_idx ON import_files (kind, sha256);

-- Audit runs and their per-unit, per-rule results.
CREATE TABLE audit_runs (
    id              bigserial PRIMARY KEY,
    region_code     char(12) NOT NULL,
    rule_pack       text NOT NULL,
    rule_pack_sha256 char(64) NOT NULL,
    as_of           timestamptz NOT NULL,
    actor           text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    summary         jsonb
);
CREATE INDEX audit_runs_region_idx ON audit_runs (region_code, started_at DESC);

CREATE TABLE audit_results (
    run_id          bigint NOT NULL REFERENCES audit_runs(id) ON DELETE CASCADE,
    rule            text NOT NULL,
    unit_kind       text NOT NULL,
    unit_id         text NOT NULL,
    region_code     char(12),
    passed          boolean NOT NULL,
    value           double precision,
    target          double precision,
    reason          text,
    PRIMARY KEY (run_id, rule, unit_kind, unit_id)
);
CREATE INDEX audit_results_failed_idx ON audit_results (run_id, rule) WHERE NOT passed;

CREATE TABLE audit_findings (
    id              bigserial PRIMARY KEY,
    run_id          bigint NOT NULL REFERENCES audit_runs(id) ON DELETE CASCADE,
    rule            text NOT NULL,
    kind            text NOT NULL,
    unit_id         text,
    area_m2         double precision,
    detail          jsonb,
    geom            geometry(Geometry, 4326)
);
CREATE INDEX audit_findings_run_idx ON audit_findings (run_id, rule);
CREATE INDEX audit_findings_geom_gix ON audit_findings USING gist (geom);

-- Live compliance: kept current by the registry on every register/move/retire.
CREATE TABLE village_compliance (
    village_code    char(12) PRIMARY KEY REFERENCES regions(code) ON DELETE CASCADE,
    cameras         integer NOT NULL,
    points          integer NOT NULL,
    offline         integer NOT NULL,
    points_required integer NOT NULL,
    passed          boolean NOT NULL,
    natural_villages integer NOT NULL DEFAULT 0,
    natural_villages_ok integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE natural_village_compliance (
    natural_village_id bigint PRIMARY KEY REFERENCES natural_villages(id) ON DELETE CASCADE,
    village_code    char(12),
    main_intersections integer NOT NULL,
    points          integer NOT NULL,
    points_required integer NOT NULL,
    passed          boolean NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX natural_village_compliance_village_idx ON natural_village_compliance (village_code);

CREATE TABLE grid_compliance (
    grid_id         bigint PRIMARY KEY REFERENCES grids(id) ON DELETE CASCADE,
    cameras         integer NOT NULL,
    workers         integer NOT NULL,
    households      integer,
    passed          boolean NOT NULL,
    reasons         text[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS grid_compliance, natural_village_compliance, village_compliance,
    audit_findings, audit_results, audit_runs, import_files, railways, roads, intersections,
    natural_villages, device_registrations CASCADE;
DROP INDEX IF EXISTS key_sites_source_key_uq;
ALTER TABLE key_sites DROP COLUMN IF EXISTS source_key;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
