"""Console: a camera's linked alarms are found by the camera (alarm_cameras by device)."""

from alembic import op

revision = "0011_console_alarm_cams"
down_revision = "0010_api_device_photos"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS alarm_cameras_device_idx ON alarm_cameras (device_id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS alarm_cameras_device_idx")
