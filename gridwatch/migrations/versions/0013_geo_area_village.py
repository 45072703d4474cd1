"""Geo: each device's approximate village stored once, and village areas cut into pieces.

A camera without a village code whose region is a township or county (no village polygon)
counts toward the approximate village area (Voronoi cell of the village points) covering it.
Testing every such camera against the areas at every audit cost most of a province audit
(700,000 point-in-polygon tests against cells that carry county-border vertices). Now
`devices.area_village_code` is found once, when the device is registered or imported and when
village areas are rebuilt, among `village_area_parts` (each area cut by ST_Subdivide into
pieces of at most 64 vertices, kept current by a trigger); the audit reads the column.
"""

from alembic import op

revision = "0013_geo_area_village"
down_revision = "0011_geo_region_parts"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE devices ADD COLUMN IF NOT EXISTS area_village_code char(12);

CREATE TABLE IF NOT EXISTS village_area_parts (
    id            bigserial PRIMARY KEY,
    village_code  char(12) NOT NULL,
    geom          geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX IF NOT EXISTS village_area_parts_geom_gix ON village_area_parts USING gist (geom);
CREATE INDEX IF NOT EXISTS village_area_parts_code_idx ON village_area_parts (village_code);

CREATE OR REPLACE FUNCTION village_area_parts_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM village_area_parts WHERE village_code = OLD.village_code;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF ST_IsValid(NEW.geom) THEN
        INSERT INTO village_area_parts (village_code, geom)
        SELECT NEW.village_code, ST_Subdivide(NEW.geom, 64);
    ELSE
        INSERT INTO village_area_parts (village_code, geom) VALUES (NEW.village_code, NEW.geom);
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION village_area_parts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE village_area_parts;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS village_area_parts_change ON village_areas;
CREATE TRIGGER village_area_parts_change AFTER INSERT OR UPDATE OF village_code, geom OR DELETE
    ON village_areas FOR EACH ROW EXECUTE FUNCTION village_area_parts_sync();
DROP TRIGGER IF EXISTS village_area_parts_truncate ON village_areas;
CREATE TRIGGER village_area_parts_truncate AFTER TRUNCATE ON village_areas
    FOR EACH STATEMENT EXECUTE FUNCTION village_area_parts_truncate();

TRUNCATE village_area_parts;
INSERT INTO village_area_parts (village_code, geom)
SELECT village_code, ST_Subdivide(geom, 64) FROM village_areas WHERE ST_IsValid(geom);

UPDATE devices d SET area_village_code = (
  SELECT a.village_code FROM village_area_parts a
  WHERE a.geom && d.position AND ST_Covers(a.geom, d.position)
    AND left(a.village_code, CASE WHEN substr(d.region_code, 7, 3) <> '000' THEN 9
          WHEN substr(d.region_code, 5, 2) <> '00' THEN 6 WHEN substr(d.region_code, 3, 2) <> '00' THEN 4
          ELSE 2 END) = left(d.region_code, CASE WHEN substr(d.region_code, 7, 3) <> '000' THEN 9
          WHEN substr(d.region_code, 5, 2) <> '00' THEN 6 WHEN substr(d.region_code, 3, 2) <> '00' THEN 4
          ELSE 2 END)
  ORDER BY a.village_code LIMIT 1)
WHERE d.position IS NOT NULL AND right(d.region_code, 3) = '000';
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS village_area_parts_change ON village_areas; "
        "DROP TRIGGER IF EXISTS village_area_parts_truncate ON village_areas; "
        "DROP FUNCTION IF EXISTS village_area_parts_sync(); "
        "DROP FUNCTION IF EXISTS village_area_parts_truncate(); "
        "DROP TABLE IF EXISTS village_area_parts; "
        "ALTER TABLE devices DROP COLUMN IF EXISTS area_village_code"
    )
