"""Broker security: the Mosquitto password file and ACL for the hub and every registered device."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from gridwatch.settings import Settings, get_settings
from hardware.credentials import device_password

log = logging.getLogger(__name__)

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for the $7$ (PBKDF2-SHA512) format


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """Hash a password in Mosquitto 2's `$7$` PBKDF2-SHA512 format, as mosquitto_passwd does."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(hub_user: str) -> str:
    """The ACL: the hub reads and writes everything; a device only its own gw/v1/{id}/ topics."""
    return (
        "# written by gridwatch (ingest.broker_auth); regenerated on every start and device change\n"
        f"user {hub_user}\n"
        "topic readwrite #\n"
        "\n"
        "# every other user is a device whose user name is its 20-digit GB/T 28181 id\n"
        "pattern write gw/v1/%u/heartbeat\n"
        "pattern write gw/v1/%u/alarm\n"
        "pattern write gw/v1/%u/position\n"
        "pattern write gw/v1/%u/analytics\n"
        "pattern write gw/v1/%u/snapshot\n"
        "pattern write gw/v1/%u/state\n"
        "pattern read gw/v1/%u/cmd\n"
    )


def registered_device_ids(settings: Settings) -> list[str]:
    """IDs of devices that may connect (registered, not retired); [] when the schema is absent."""
    from sqlalchemy import text

    from gridwatch.db import get_engine

    try:
        with get_engine(settings).connect() as conn:
            rows = conn.execute(text("SELECT id FROM devices WHERE retired_at IS NULL ORDER BY id"))
            return [r[0] for r in rows]
    except Exception as exc:  # the database may be down or not migrated yet at first start
        log.info("no device credentials written (%s)", exc.__class__.__name__)
        return []


def write_broker_files(
    passwd_path: Path,
    acl_path: Path,
    settings: Settings | None = None,
    device_ids: Iterable[str] | None = None,
) -> int:
    """Write the password file and ACL atomically; returns how many device users were written."""
    settings = settings or get_settings()
    hub_user, hub_password = settings.hub_credentials()
    ids = list(device_ids) if device_ids is not None else registered_device_ids(settings)
    lines = [f"{hub_user}:{mosquitto_hash(hub_password)}"]
    salt = secrets.token_bytes(12)  # one salt per file write keeps 100k hashes quick to compute
    for device_id in ids:
        lines.append(
            f"{device_id}:{mosquitto_hash(device_password(device_id, settings.secret_key), salt)}"
        )
    for path, content in ((passwd_path, "\n".join(lines) + "\n"), (acl_path, acl_text(hub_user))):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(content)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    return len(ids)
