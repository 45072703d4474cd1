"""GB/T 28181: which gateway fronts each device (its broker account may publish only for those)."""

from alembic import op

revision = "0011_gb28181_gateway"
down_revision = "0010_gb28181_sia_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- the name of the gateway the device last registered with (channels: their parent's);
        -- NULL: none yet
        ALTER TABLE gb_devices ADD COLUMN gateway text;
        CREATE INDEX gb_devices_gateway ON gb_devices (gateway) WHERE gateway IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE gb_devices DROP COLUMN gateway")
