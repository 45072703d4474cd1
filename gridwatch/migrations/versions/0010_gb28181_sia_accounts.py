"""SIA DC-09 alarm receiver: panel accounts mapped to devices, with optional AES keys."""

from alembic import op

revision = "0010_gb28181_sia_accounts"
down_revision = "0009_gb28181_devices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sia_accounts (
          account text PRIMARY KEY CHECK (account ~ '^[0-9A-F]{3,16}$'),
          device_id varchar(20) NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
          -- the panel's AES key (16, 24 or 32 characters, used as is, as DC-09 panels do); NULL:
          -- the account sends unencrypted messages
          aes_key text CHECK (aes_key IS NULL OR length(aes_key) IN (16, 24, 32)),
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX sia_accounts_device ON sia_accounts (device_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE sia_accounts")
