"""Broker: per-device MQTT reset nonces (a device's password changes when its nonce does).

The password itself is never stored: it is derived from the nonce under the hub's device key,
which lives in GRIDWATCH_HOME/secrets.json, not in the database.
"""

from alembic import op

revision = "0009_broker_device_nonces"
down_revision = "0008_ingest_autovacuum"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE device_mqtt_nonces (
            device_id text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
            nonce text NOT NULL CHECK (length(nonce) BETWEEN 16 AND 64),
            issued_at timestamptz NOT NULL DEFAULT now(),
            issued_by text NOT NULL
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE device_mqtt_nonces")
