"""The hub's generated secrets in GRIDWATCH_HOME/secrets.json (mode 0600), made at first set-up."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any

# Broker accounts of the hub, one per role (see ingest/broker_acl.py for what each may do).
HUB_ROLES = ("ingest", "api", "vision", "simulator", "gateway", "admin")
FILE_NAME = "secrets.json"


def _new() -> dict[str, Any]:
    return {
        "token_key": secrets.token_urlsafe(48),  # signs API tokens, nothing else
        "device_key": secrets.token_urlsafe(48),  # derives device MQTT passwords, nothing else
        "share_group": "ingest-" + secrets.token_hex(12),  # not guessable
        "pg_password": secrets.token_urlsafe(32),
        "mqtt": {role: secrets.token_urlsafe(32) for role in HUB_ROLES},
    }


def secrets_path(home: Path) -> Path:
    """Where the secrets live for this GRIDWATCH_HOME."""
    return Path(home) / FILE_NAME


def load_secrets(home: Path) -> dict[str, Any]:
    """The secrets of this GRIDWATCH_HOME, generated (0600, under a lock) on first use.

    Keys missing from an older file are added; existing ones never change."""
    path = secrets_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data: dict[str, Any] = {}
        if path.exists():
            data = json.loads(path.read_text() or "{}")
        fresh = _new()
        changed = not path.exists()
        for key, value in fresh.items():
            if key not in data:
                data[key], changed = value, True
        for role, pw in fresh["mqtt"].items():
            if role not in data["mqtt"]:
                data["mqtt"][role], changed = pw, True
        if changed:
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=1)
            os.chmod(tmp, 0o600)
            tmp.replace(path)
        elif path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return data
