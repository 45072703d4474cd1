"""Geo: region_parts, every active region boundary cut into small pieces for locating points.

A point-in-polygon test against a whole county boundary (thousands of vertices) costs about
0.15 ms; against a piece of at most 64 vertices it costs microseconds, and the GiST index on
the pieces finds the one piece that can hold the point. A trigger keeps the pieces current when
a region's boundary, level or retirement changes (and on delete or truncate).
"""

from alembic import op

revision = "0011_geo_region_parts"
down_revision = "0009_geo_village_basis"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE IF NOT EXISTS region_parts (
    id      bigserial PRIMARY KEY,
    code    char(12) NOT NULL,
    level   smallint NOT NULL,
    geom    geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX IF NOT EXISTS region_parts_geom_gix ON region_parts USING gist (geom);
CREATE INDEX IF NOT EXISTS region_parts_code_idx ON region_parts (code);

CREATE OR REPLACE FUNCTION region_parts_of(c char(12), lvl smallint, g geometry)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM region_parts WHERE code = c;
    IF g IS NULL THEN
        RETURN;
    END IF;
    IF ST_IsValid(g) THEN
        INSERT INTO region_parts (code, level, geom) SELECT c, lvl, ST_Subdivide(g, 64);
    ELSE  -- an invalid boundary is not cut (GEOS may refuse to); it is kept whole
        INSERT INTO region_parts (code, level, geom) VALUES (c, lvl, g);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION region_parts_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM region_parts WHERE code = OLD.code;
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.code <> NEW.code THEN
        DELETE FROM region_parts WHERE code = OLD.code;
    END IF;
    PERFORM region_parts_of(
        NEW.code, NEW.level, CASE WHEN NEW.retired_at IS NULL THEN NEW.geom END);
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION region_parts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE region_parts;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS region_parts_insert ON regions;
CREATE TRIGGER region_parts_insert AFTER INSERT ON regions
    FOR EACH ROW WHEN (NEW.geom IS NOT NULL) EXECUTE FUNCTION region_parts_sync();
DROP TRIGGER IF EXISTS region_parts_update ON regions;
CREATE TRIGGER region_parts_update AFTER UPDATE OF code, level, geom, retired_at ON regions
    FOR EACH ROW
    WHEN (OLD.geom IS DISTINCT FROM NEW.geom OR OLD.level IS DISTINCT FROM NEW.level
          OR OLD.code IS DISTINCT FROM NEW.code
          OR (OLD.retired_at IS NULL) IS DISTINCT FROM (NEW.retired_at IS NULL))
    EXECUTE FUNCTION region_parts_sync();
DROP TRIGGER IF EXISTS region_parts_delete ON regions;
CREATE TRIGGER region_parts_delete AFTER DELETE ON regions
    FOR EACH ROW WHEN (OLD.geom IS NOT NULL) EXECUTE FUNCTION region_parts_sync();
DROP TRIGGER IF EXISTS region_parts_truncate ON regions;
CREATE TRIGGER region_parts_truncate AFTER TRUNCATE ON regions
    FOR EACH STATEMENT EXECUTE FUNCTION region_parts_truncate();

TRUNCATE region_parts;
INSERT INTO region_parts (code, level, geom)
SELECT code, level, ST_Subdivide(geom, 64) FROM regions
 WHERE geom IS NOT NULL AND retired_at IS NULL AND ST_IsValid(geom);
INSERT INTO region_parts (code, level, geom)
SELECT code, level, geom FROM regions
 WHERE geom IS NOT NULL AND retired_at IS NULL AND NOT ST_IsValid(geom);
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS region_parts_truncate ON regions;
DROP TRIGGER IF EXISTS region_parts_delete ON regions;
DROP TRIGGER IF EXISTS region_parts_update ON regions;
DROP TRIGGER IF EXISTS region_parts_insert ON regions;
DROP FUNCTION IF EXISTS region_parts_truncate();
DROP FUNCTION IF EXISTS region_parts_sync();
DROP FUNCTION IF EXISTS region_parts_of(char(12), smallint, geometry);
DROP TABLE IF EXISTS region_parts;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
