"""GB/T 28181 gateway: per-device signalling state (registration, channel parent, CRS, SIP
password digest, firmware), kept in the database so a gateway restart loses none of it."""

from alembic import op

revision = "0009_gb28181_devices"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE gb_devices (
          device_id varchar(20) PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
          -- a channel's NVR/IPC (the registered device whose catalog listed it); NULL: a device
          parent_id varchar(20) REFERENCES devices(id) ON DELETE CASCADE,
          -- MD5(id:domain:password) of the device's own SIP password; NULL: the platform's
          sip_ha1 text CHECK (sip_ha1 IS NULL OR sip_ha1 ~ '^[0-9a-f]{32}$'),
          -- the CRS the device reports Longitude/Latitude in (real platforms: WGS 84 or GCJ-02)
          crs text NOT NULL DEFAULT 'wgs84' CHECK (crs IN ('wgs84', 'gcj02', 'bd09')),
          edition smallint CHECK (edition IS NULL OR edition IN (2016, 2022)),
          transport text CHECK (transport IS NULL OR transport IN ('udp', 'tcp')),
          address text,
          registered_at timestamptz,
          registered_until timestamptz,
          civil_code text,
          channel_status text,
          firmware text,
          info jsonb,
          catalog_at timestamptz,
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX gb_devices_parent ON gb_devices (parent_id) WHERE parent_id IS NOT NULL;
        CREATE INDEX gb_devices_registered ON gb_devices (registered_until)
          WHERE registered_until IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE gb_devices")
