"""Settings from GRIDWATCH_* environment variables (pydantic-settings), one place for every knob."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every GRIDWATCH_* setting; see the README table for what each one means."""

    model_config = SettingsConfigDict(env_prefix="GRIDWATCH_", extra="ignore")

    home: Path = Field(
        default=PROJECT_ROOT / ".gridwatch",
        description="Data directory for the local PostGIS cluster, Mosquitto, logs and PID files.",
    )
    database_url: str | None = Field(
        default=None,
        description="Use this PostgreSQL/PostGIS server instead of starting a local one.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="Use this MQTT broker (mqtt://user:pass@host:port) instead of a local one.",
    )
    pg_port: int = Field(
        default=25432,
        description="Port of the project-local PostGIS cluster (below 32768: outside Linux's ephemeral range).",
    )
    mqtt_port: int = Field(
        default=21883,
        description="Port of the project-local Mosquitto (below 32768: outside Linux's ephemeral range).",
    )
    db_name: str = Field(default="gridwatch", description="Database name in the local cluster.")
    api_host: str = Field(default="127.0.0.1", description="Address the API and map listen on.")
    api_port: int = Field(default=8470, description="Port the API and map listen on.")
    public_url: str | None = Field(
        default=None,
        description="Address phones and browsers use to reach the pages and API "
        "(https://hub.lan:8470); used in links, QR codes and certificates.",
    )
    mqtt_public_url: str | None = Field(
        default=None,
        description="Broker address devices are told to use (mqtt://host:port or mqtts://host:port).",
    )
    mqtt_tls_port: int = Field(
        default=0,
        description="A second, TLS-only listener of the local Mosquitto for devices (e.g. 8883), "
        "on GRIDWATCH_MQTT_TLS_HOST, with the certificate HTTPS uses (GRIDWATCH_TLS=local or "
        "GRIDWATCH_TLS_CERT/KEY); 0: none, the broker listens on loopback only.",
    )
    mqtt_tls_host: str = Field(
        default="0.0.0.0",
        description="Address the broker's TLS listener (GRIDWATCH_MQTT_TLS_PORT) binds.",
    )
    tls: Literal["off", "local"] = Field(
        default="off",
        description="HTTPS for the pages and API: 'local' makes a local CA under GRIDWATCH_HOME/tls "
        "(install it on phones from /install/ca).",
    )
    tls_cert: str | None = Field(
        default=None,
        description="Your own certificate chain (PEM) for HTTPS; with GRIDWATCH_TLS_KEY.",
    )
    tls_key: str | None = Field(
        default=None, description="The private key (PEM) of GRIDWATCH_TLS_CERT."
    )
    tile_url: str | None = Field(
        default=None,
        description="Base-map tile URL template ({z}/{x}/{y}); none: region outlines are the base.",
    )
    max_payload_bytes: int = Field(
        default=262_144, description="Largest MQTT payload accepted; larger ones are dead-lettered."
    )
    secret_key: str = Field(
        default="",
        description="Key that signs API bearer tokens (nothing else); empty: the key generated "
        "in GRIDWATCH_HOME/secrets.json at first set-up.",
    )
    log_level: str = Field(default="INFO", description="Logging level of workers and the API.")
    sip_host: str = Field(
        default="127.0.0.1", description="Address the GB/T 28181 gateway listens on (UDP and TCP)."
    )
    sip_port: int = Field(default=5060, description="SIP port of the GB/T 28181 gateway.")
    sip_id: str = Field(
        default="36012100002000000001",
        pattern=r"^[0-9]{20}$",
        description="The platform's 20-digit GB/T 28181 SIP server id.",
    )
    sip_domain: str = Field(
        default="3601210000", pattern=r"^[0-9]{10}$", description="The 10-digit SIP domain (realm)."
    )
    sia_host: str = Field(
        default="127.0.0.1", description="Address the SIA DC-09 alarm receiver listens on."
    )
    sia_port: int = Field(default=12000, description="Port of the SIA DC-09 receiver (TCP, UDP).")
    sip_password: str | None = Field(
        default=None,
        description="SIP password of devices without their own; unset: only those can register.",
    )
    cascade_upper: str | None = Field(
        default=None,
        description="Upper GB/T 28181 platform the hub registers with as a lower platform "
        "(sip:<20-digit id>@<host>[:<port>]); unset: no cascading (`gridwatch gb28181 cascade`).",
    )
    cascade_password: str | None = Field(
        default=None, description="SIP password the upper platform gave this hub."
    )
    cascade_transport: Literal["udp", "tcp"] = Field(
        default="udp", description="SIP transport to the upper platform."
    )
    cascade_port: int = Field(
        default=5061,
        ge=0,
        le=65_535,
        description="Local UDP port of the upward link (on GRIDWATCH_SIP_HOST; 0: any).",
    )
    cascade_region: str | None = Field(
        default=None,
        description="Scope given to the upper platform: devices (catalog) and alarms of this "
        "region code and below; unset: every device.",
    )
    cascade_expires: int = Field(
        default=3600, ge=60, le=86_400, description="Registration validity asked of the upper."
    )
    cascade_keepalive_s: float = Field(
        default=60.0, gt=0, le=3600, description="Keepalive interval towards the upper platform."
    )
    cascade_crs: Literal["wgs84", "gcj02"] = Field(
        default="wgs84", description="CRS of the positions sent to the upper platform."
    )
    live_max_transcodes: int = Field(
        default=4,
        ge=0,
        le=64,
        description="Live view: FFmpeg processes (one per camera watched) at most per API worker; "
        "0 turns live view off.",
    )
    live_idle_s: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="Live view: a camera's FFmpeg is stopped this long after its last viewer "
        "stopped fetching (or at once when the last viewer closes it).",
    )
    rtsp_demo_port: int = Field(
        default=28554,
        description="Port of the demo's RTSP cameras (GStreamer's RTSP server on a real clip, "
        "started by ./gw demo on loopback).",
    )
    live_video: Literal["copy", "h264"] = Field(
        default="copy",
        description="Live view: 'copy' remuxes the camera's H.264 into HLS (cheap); 'h264' "
        "re-encodes (for cameras sending H.265 or MJPEG; one CPU core per camera watched).",
    )

    @model_validator(mode="after")
    def _generated_token_key(self) -> Settings:
        """An unset GRIDWATCH_SECRET_KEY means the generated one (made at first use, 0600)."""
        if not self.secret_key:
            from gridwatch.secrets import load_secrets

            try:
                self.secret_key = load_secrets(self.home)["token_key"]
            except OSError:  # an unwritable home: leave it empty, the API refuses to sign
                pass
        return self

    @property
    def local_database(self) -> bool:
        """True when gridwatch starts and owns its own PostGIS cluster."""
        return self.database_url is None

    @property
    def local_mqtt(self) -> bool:
        """True when gridwatch starts and owns its own Mosquitto."""
        return self.mqtt_url is None

    def db_url(self, dbname: str | None = None, role: str = "owner") -> str:
        """SQLAlchemy URL (psycopg 3 driver) of the configured or local database, for one of the
        local cluster's roles (gridwatch/dbroles.py): owner (migrations, admin commands), api,
        ingest, auditor, vision, gb28181, alarmrx, or admin (the superuser: roles, databases,
        extensions). An external
        GRIDWATCH_DATABASE_URL is used as given for every role."""
        if self.database_url:
            url = self.database_url
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):
                    url = "postgresql+psycopg://" + url[len(prefix) :]
            if dbname:
                base, _, _ = url.rpartition("/")
                url = f"{base}/{dbname}"
            return url
        name = dbname or self.db_name
        from urllib.parse import quote

        from gridwatch.dbroles import role_user
        from gridwatch.secrets import load_secrets

        stored = load_secrets(self.home)
        secret = stored["pg_password"] if role == "admin" else stored["pg_roles"][role]
        password = quote(secret, safe="")
        user = role_user(role)
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.pg_port}/{name}"

    def mqtt_endpoint(self) -> tuple[str, int]:
        """(host, port) of the configured or local broker."""
        if self.mqtt_url:
            parts = urlsplit(self.mqtt_url)
            return parts.hostname or "127.0.0.1", parts.port or 1883
        return "127.0.0.1", self.mqtt_port

    def mqtt_public_endpoint(self) -> tuple[str, str, int]:
        """(scheme, host, port) devices are told to connect to: GRIDWATCH_MQTT_PUBLIC_URL, else
        the local broker's TLS listener at the public URL's host, else the broker the hub uses."""
        if self.mqtt_public_url:
            parts = urlsplit(self.mqtt_public_url)
            scheme = "mqtts" if parts.scheme in ("mqtts", "ssl", "tls") else "mqtt"
            return (
                scheme,
                parts.hostname or "127.0.0.1",
                parts.port or (8883 if scheme == "mqtts" else 1883),
            )
        if self.mqtt_tls_port and self.local_mqtt:
            host = urlsplit(self.public_url).hostname if self.public_url else None
            return "mqtts", host or "127.0.0.1", self.mqtt_tls_port
        host, port = self.mqtt_endpoint()
        return "mqtt", host, port

    def hub_credentials(self, role: str = "ingest") -> tuple[str, str]:
        """(user, password) of the hub's broker account for `role` (ingest, api, vision,
        simulator, admin): generated per role for the local broker (GRIDWATCH_HOME/secrets.json),
        the account in GRIDWATCH_MQTT_URL for an external one."""
        if self.mqtt_url:
            parts = urlsplit(self.mqtt_url)
            if parts.username:
                return parts.username, parts.password or ""
        from gridwatch.secrets import hub_username, load_secrets

        return hub_username(role), load_secrets(self.home)["mqtt"][role]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
