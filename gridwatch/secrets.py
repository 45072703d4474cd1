"""The hub's generated secrets in GRIDWATCH_HOME/secrets.json (mode 0600), made at first set-up."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any

# Broker accounts of the hub, one per role (see ingest/broker_acl.py for what each may do).
HUB_ROLES = ("ingest", "api", "vision", "simulator", "admin", "federation")
# hub roles no longer made; a broker state that still has them loses them at its next rebuild.
# gateway: protocol gateways have accounts of their own (ingest.broker_acl.gateway_account)
RETIRED_HUB_ROLES = ("gateway",)
# Database roles of the local cluster (see gridwatch/dbroles.py for what each may do).
PG_ROLES = ("owner", "api", "ingest", "auditor", "vision", "gb28181", "alarmrx")
FILE_NAME = "secrets.json"


def _new() -> dict[str, Any]:
    return {
        "token_key": secrets.token_urlsafe(48),  # signs API tokens, nothing else
        "device_key": secrets.token_urlsafe(48),  # derives device MQTT passwords, nothing else
        "csrf_key": secrets.token_urlsafe(48),  # the API's CSRF tokens, nothing else
        "sip_nonce_key": secrets.token_urlsafe(48),  # GB/T 28181 digest nonces, nothing else
        "share_group": "ingest-" + secrets.token_hex(12),  # not guessable
        "pg_password": secrets.token_urlsafe(32),  # the local cluster's superuser, admin only
        # the services' least-privilege database roles (gridwatch/dbroles.py)
        "pg_roles": {role: secrets.token_urlsafe(32) for role in PG_ROLES},
        # the login a city uses to replicate this hub's published tables (federation/)
        "fed_repl_password": secrets.token_urlsafe(32),
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
        for group in ("mqtt", "pg_roles"):
            for role, pw in fresh[group].items():
                if role not in data[group]:
                    data[group][role], changed = pw, True
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


# Secrets published in READMEs and old defaults: never accepted outside a demo or loopback.
KNOWN_DEFAULTS = frozenset(
    {"change-me-gridwatch-dev-secret", "gridwatch-hub-secret", "change-me", "secret", "password"}
)
MIN_KEY_CHARS = 32
MIN_PASSWORD_CHARS = 16
LOOPBACK = ("127.", "::1", "localhost")


class WeakSecretError(RuntimeError):
    """A default or weak secret outside a demo or loopback; the message says which and how."""


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    return bool(host) and (host == "::1" or host == "localhost" or str(host).startswith("127."))


def weak_secrets(settings: Any) -> list[str]:
    """What is default or weak in these settings: the token key, the broker account in
    GRIDWATCH_MQTT_URL and the password in GRIDWATCH_DATABASE_URL."""
    from urllib.parse import urlsplit

    out: list[str] = []
    key = settings.secret_key or ""
    if key in KNOWN_DEFAULTS:
        out.append("GRIDWATCH_SECRET_KEY is a published default")
    elif len(key) < MIN_KEY_CHARS:
        out.append(f"GRIDWATCH_SECRET_KEY has {len(key)} characters (< {MIN_KEY_CHARS})")
    for name, url in (
        ("GRIDWATCH_MQTT_URL", settings.mqtt_url),
        ("GRIDWATCH_DATABASE_URL", settings.database_url),
    ):
        if not url:
            continue
        pw = urlsplit(url).password or ""
        if pw in KNOWN_DEFAULTS:
            out.append(f"the password in {name} is a published default")
        elif len(pw) < MIN_PASSWORD_CHARS:
            out.append(f"the password in {name} has {len(pw)} characters (< {MIN_PASSWORD_CHARS})")
    return out


def require_strong_secrets(settings: Any, exposed_host: str | None, what: str) -> None:
    """Refuse to start `what` with a default or weak secret unless GRIDWATCH_DEMO=1 or every
    address it exposes or uses is loopback (`exposed_host`); WeakSecretError says what to do."""
    problems = weak_secrets(settings)
    if not problems or os.environ.get("GRIDWATCH_DEMO") == "1" or is_loopback(exposed_host):
        return
    raise WeakSecretError(
        f"{what} refuses to start on {exposed_host}: "
        + "; ".join(problems)
        + ". Unset GRIDWATCH_SECRET_KEY to use the key generated in "
        f"{secrets_path(settings.home)}, or set one of {MIN_KEY_CHARS}+ random characters "
        "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))'); give the broker and "
        "database accounts strong passwords. For a demo only: GRIDWATCH_DEMO=1."
    )


def hub_username(role: str) -> str:
    """The hub's broker user name for a role."""
    return f"gridwatch-{role}"


def generated_key(name: str, settings: Any = None) -> str:
    """One of the hub's generated keys in GRIDWATCH_HOME/secrets.json, each for one purpose:
    device_key (device passwords), csrf_key (the API's CSRF tokens), sip_nonce_key (GB/T 28181
    digest nonces); API tokens are signed with settings.secret_key alone."""
    if settings is None:
        from gridwatch.settings import get_settings

        settings = get_settings()
    return str(load_secrets(settings.home)[name])


def device_key(settings: Any = None) -> str:
    """The hub's key for device passwords (GRIDWATCH_HOME/secrets.json), separate from tokens."""
    return generated_key("device_key", settings)
