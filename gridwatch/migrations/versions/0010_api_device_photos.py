"""API: photos of a device's installation, taken by the installer's phone and kept with the device."""

from alembic import op

revision = "0010_api_device_photos"
down_revision = "0005_api"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE IF NOT EXISTS device_photos (
    id            bigserial PRIMARY KEY,
    device_id     char(20) NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    content_type  text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png')),
    bytes         bytea NOT NULL CHECK (octet_length(bytes) <= 4194304),
    width         integer NOT NULL,
    height        integer NOT NULL,
    note          text CHECK (octet_length(note) <= 500),
    taken_by      text NOT NULL,
    taken_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS device_photos_device_idx ON device_photos (device_id, taken_at DESC);
"""

DOWNGRADE = "DROP TABLE IF EXISTS device_photos;"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
