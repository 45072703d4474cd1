"""Geo: which cameras' sectors cover which intersections, kept by the registry and importers.

A maintained spatial join: the audit of a province reads it instead of probing a million
coverage sectors for every main intersection.
"""

from alembic import op

revision = "0005_geo_views"
down_revision = "0004_geo"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE intersection_views (
    intersection_id bigint NOT NULL REFERENCES intersections(id) ON DELETE CASCADE,
    device_id       char(20) NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    PRIMARY KEY (intersection_id, device_id)
);
CREATE INDEX intersection_views_device_idx ON intersection_views (device_id);
INSERT INTO intersection_views (intersection_id, device_id)
SELECT i.id, d.id FROM intersections i
JOIN devices d ON d.fov && i.geom AND ST_Covers(d.fov, i.geom);
"""

DOWNGRADE = "DROP TABLE IF EXISTS intersection_views;"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
