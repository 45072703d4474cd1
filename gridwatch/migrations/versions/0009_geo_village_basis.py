"""Geo: where a camera counts and which units are audited.

- regions.point: the official point of a unit (village lists carry points, never polygons);
- regions.retired_at: codes abolished between list versions are kept, retired, not audited;
- devices.village_code: the village a device was registered or imported with (first basis);
- village_areas: approximate village areas (Voronoi cells of village points clipped to the
  township or county boundary), rebuilt when points or boundaries change.
"""

from alembic import op

revision = "0009_geo_village_basis"
down_revision = "0005_geo_views"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE regions ADD COLUMN IF NOT EXISTS point geometry(Point, 4326);
ALTER TABLE regions ADD COLUMN IF NOT EXISTS retired_at timestamptz;
CREATE INDEX IF NOT EXISTS regions_point_gix ON regions USING gist (point);
ALTER TABLE devices ADD COLUMN IF NOT EXISTS village_code char(12) REFERENCES regions(code);
CREATE INDEX IF NOT EXISTS devices_village_idx ON devices (village_code) WHERE village_code IS NOT NULL;
CREATE TABLE IF NOT EXISTS village_areas (
    village_code    char(12) PRIMARY KEY REFERENCES regions(code) ON DELETE CASCADE,
    county_code     char(12) NOT NULL,
    clip            text NOT NULL,
    geom            geometry(MultiPolygon, 4326) NOT NULL,
    built_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS village_areas_geom_gix ON village_areas USING gist (geom);
CREATE INDEX IF NOT EXISTS village_areas_county_idx ON village_areas (county_code);
-- which basis a unit's result used (village code, polygon, approximate area; urban-rural code or name)
ALTER TABLE audit_results ADD COLUMN IF NOT EXISTS basis text;
"""

DOWNGRADE = """
ALTER TABLE audit_results DROP COLUMN IF EXISTS basis;
DROP TABLE IF EXISTS village_areas;
ALTER TABLE devices DROP COLUMN IF EXISTS village_code;
ALTER TABLE regions DROP COLUMN IF EXISTS retired_at;
ALTER TABLE regions DROP COLUMN IF EXISTS point;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
