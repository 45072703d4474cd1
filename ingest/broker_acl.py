"""Broker least privilege: Mosquitto dynamic-security roles, clients and provisioning commands.

The local Mosquitto loads the dynamic-security plugin. Mosquitto 2.0.11's plugin has no `%u`
substitution, so the per-device rule ("your own topics only") is a static pattern ACL file that
never changes; the plugin holds every identity (hub roles, devices, gateways) and each role
explicitly denies every subscription it does not grant (the ACL file alone grants them all).
Every topic comes from hardware/contract/topics.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridwatch.secrets import (
    HUB_ROLES,
    RETIRED_HUB_ROLES,
    device_key,
    hub_username,
    load_secrets,
)
from gridwatch.services import LocalMosquitto
from gridwatch.settings import Settings, get_settings
from hardware.contract.acl import (
    CONTROL_TOPIC,
    DEVICE_ROLE,
    RESPONSE_TOPIC,
    acl_file_text,
    gateway_acls,
    role_acls,
)
from hardware.credentials import device_password

log = logging.getLogger(__name__)

DEVICE_GROUP = "devices"
GATEWAY_PREFIX = "gateway-"
PBKDF2_ITERATIONS = 101  # the plugin's default
COMMANDS_PER_MESSAGE = 200
BULK_COMMANDS = 200  # more device changes than this at once: rebuild the state file instead


class BrokerAdminError(RuntimeError):
    """A dynamic-security command failed or the broker did not answer; the message says which."""


def is_device_username(username: str) -> bool:
    """Device users are their 20-digit ids; nothing else is."""
    return len(username) == 20 and username.isascii() and username.isdigit()


# --------------------------------------------------------------------------- roles


# --------------------------------------------------------------------------- config file


def password_entry(password: str, salt: bytes | None = None) -> dict[str, Any]:
    """The plugin's stored form of a password: PBKDF2-SHA512, 12-byte salt, base64."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": PBKDF2_ITERATIONS,
    }


def current_device_password(
    device_id: str, nonce: str = "", settings: Settings | None = None
) -> str:
    """A device's current MQTT password (its nonce changes at every reset)."""
    return device_password(device_id, device_key(settings), nonce)


def active_devices(
    settings: Settings, ids: list[str] | None = None, strict: bool = True
) -> dict[str, str]:
    """{id: nonce} of devices that may connect (of `ids` when given). A database error raises
    (an empty answer would remove every device from the broker) unless not `strict` (the
    broker's first start, before the database exists or is migrated: {})."""
    from sqlalchemy import text

    from gridwatch.db import get_engine

    try:
        with get_engine(settings, role="ingest").connect() as conn:
            sql = (
                "SELECT d.id, coalesce(n.nonce, '') FROM devices d "
                "LEFT JOIN device_mqtt_nonces n ON n.device_id = d.id "
                "WHERE d.retired_at IS NULL"
            )
            if ids is not None:
                sql += " AND d.id = ANY(:ids)"
            return {r[0]: r[1] for r in conn.execute(text(sql), {"ids": ids})}
    except Exception as exc:
        if strict:
            raise
        log.info("no device clients written (%s)", exc.__class__.__name__)
        return {}


def build_config(
    settings: Settings,
    devices: dict[str, str],
    previous: dict[str, Any] | None = None,
    keep_devices: bool = False,
) -> dict[str, Any]:
    """The plugin's full state: hub accounts, the device group and role, every active device;
    other clients and roles of `previous` (the file the broker last saved: gateways) are kept,
    and its device clients too when `keep_devices` (the database could not be read)."""
    key = device_key(settings)
    hub = load_secrets(settings.home)["mqtt"]
    salt = secrets.token_bytes(12)  # one salt per rebuild keeps 100,000 hashes quick
    clients = [
        {
            "username": hub_username(role),
            "textname": f"gridwatch hub: {role}",
            "roles": [{"rolename": role}],
            **password_entry(hub[role]),
        }
        for role in HUB_ROLES
    ]
    clients += [
        {
            "username": device_id,
            "groups": [{"groupname": DEVICE_GROUP}],
            **password_entry(device_password(device_id, key, nonce), salt),
        }
        for device_id, nonce in sorted(devices.items())
    ]
    roles = [{"rolename": r, "acls": role_acls(r)} for r in (*HUB_ROLES, DEVICE_ROLE)]
    if previous:  # accounts made at run time (gateways, ...) survive a restart as they were
        ours_c = {c["username"] for c in clients} | {hub_username(r) for r in RETIRED_HUB_ROLES}
        ours_r = {r["rolename"] for r in roles} | set(RETIRED_HUB_ROLES)
        clients += [
            c
            for c in previous.get("clients", [])
            if c.get("username") not in ours_c
            and (keep_devices or not is_device_username(c.get("username", "")))
        ]
        roles += [r for r in previous.get("roles", []) if r.get("rolename") not in ours_r]
    # The plugin reads group membership from the group's own "clients" list when it loads the
    # file (a client's "groups" is ignored there): without it every device loaded at a start
    # has no role, its ACL checks fall through to the acl_file, which grants any SUBSCRIBE
    # ('$share' included: the hijack) - see tests/security/test_broker_acl.py.
    members = [
        {"username": c["username"]}
        for c in clients
        if any(g.get("groupname") == DEVICE_GROUP for g in c.get("groups") or [])
    ]
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [
            {"groupname": DEVICE_GROUP, "roles": [{"rolename": DEVICE_ROLE}], "clients": members}
        ],
        "roles": roles,
    }


def write_broker_files(
    config_path: Path,
    acl_path: Path,
    settings: Settings | None = None,
    devices: dict[str, str] | None = None,
) -> int:
    """Write the plugin's state and the static ACL (broker stopped); how many devices."""
    settings = settings or get_settings()
    if devices is None:
        # Before the database exists (first start) there are no devices; a broker restarted while
        # the database is down keeps the device clients it last saved.
        try:
            devices = active_devices(settings)
        except Exception as exc:  # noqa: BLE001
            log.info("device clients kept from the last state (%s)", exc.__class__.__name__)
            devices = None
    previous = None
    if config_path.exists():
        try:
            previous = json.loads(config_path.read_text())
        except ValueError:
            previous = None
    config = build_config(settings, devices or {}, previous, keep_devices=devices is None)
    for path, content in ((config_path, json.dumps(config)), (acl_path, acl_file_text())):
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
        tmp.replace(path)
    return len(devices or {})


# --------------------------------------------------------------------------- run-time admin


class DynsecAdmin:
    """A connection as the hub's `admin` account sending dynamic-security commands."""

    def __init__(self, settings: Settings | None = None, timeout: float = 15.0) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.settings = settings or get_settings()
        self.timeout = timeout
        self._responses: dict[str, list[dict[str, Any]]] = {}
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._refused: str | None = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"gridwatch-admin-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(*self.settings.hub_credentials("admin"))
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *a: self._ready.set()
        client.on_message = self._on_message
        self.client = client
        host, port = self.settings.mqtt_endpoint()
        client.connect(host, port, keepalive=30)
        client.loop_start()
        if not self._ready.wait(timeout):
            self.close()
            raise BrokerAdminError(
                f"the broker did not accept the admin account in {timeout:.0f}s"
                + (f" ({self._refused})" if self._refused else "")
            )

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            return
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        for r in body.get("responses", []):
            corr = r.get("correlationData")
            if corr:
                with self._cond:
                    self._responses.setdefault(corr, []).append(r)
                    self._cond.notify_all()

    def run(self, commands: list[dict[str, Any]], ok_errors: tuple[str, ...] = ()) -> list[dict]:
        """Send commands (in chunks), wait for every answer; BrokerAdminError on a failure
        other than `ok_errors` (e.g. "Client already exists")."""
        out: list[dict] = []
        for start in range(0, len(commands), COMMANDS_PER_MESSAGE):
            chunk = commands[start : start + COMMANDS_PER_MESSAGE]
            corr = uuid.uuid4().hex
            payload = {"commands": [{**c, "correlationData": corr} for c in chunk]}
            self.client.publish(CONTROL_TOPIC, json.dumps(payload), qos=1)
            deadline = time.monotonic() + self.timeout + len(chunk) * 0.05
            with self._cond:
                while len(self._responses.get(corr, [])) < len(chunk):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise BrokerAdminError(
                            f"the broker answered {len(self._responses.get(corr, []))} of "
                            f"{len(chunk)} dynamic-security commands"
                        )
                    self._cond.wait(left)
                got = self._responses.pop(corr)
            for r in got:
                err = r.get("error")
                if err and err not in ok_errors:
                    raise BrokerAdminError(f"{r.get('command')}: {err}")
            out += got
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> DynsecAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries
    def client_names(self) -> set[str]:
        r = self.run([{"command": "listClients", "verbose": False, "count": -1, "offset": 0}])
        return set(r[0].get("data", {}).get("clients", []))

    # ------------------------------------------------------------------ devices
    def put_devices(self, devices: dict[str, str], existing: set[str] | None = None) -> int:
        """Create device clients (or re-key existing ones) with their current passwords."""
        if not devices:
            return 0
        key = device_key(self.settings)
        existing = existing if existing is not None else self.client_names()
        cmds: list[dict[str, Any]] = []
        for device_id, nonce in devices.items():
            pw = device_password(device_id, key, nonce)
            if device_id in existing:
                cmds.append({"command": "setClientPassword", "username": device_id, "password": pw})
            else:
                cmds.append(
                    {
                        "command": "createClient",
                        "username": device_id,
                        "password": pw,
                        "groups": [{"groupname": DEVICE_GROUP}],
                    }
                )
        self.run(cmds, ok_errors=("Client already exists",))
        return len(cmds)

    def remove_devices(self, device_ids: Iterable[str]) -> int:
        cmds = [
            {"command": "deleteClient", "username": d} for d in device_ids if is_device_username(d)
        ]
        self.run(cmds, ok_errors=("Client not found",))
        return len(cmds)

    # ------------------------------------------------------------------ gateways
    def put_client(self, username: str, password: str, role: str) -> None:
        """A client holding `role` with this password: created, or its password set when it
        exists (its roles left as they are)."""
        got = self.run(
            [
                {
                    "command": "createClient",
                    "username": username,
                    "password": password,
                    "roles": [{"rolename": role}],
                }
            ],
            ok_errors=("Client already exists",),
        )
        if got[0].get("error"):
            self.run([{"command": "setClientPassword", "username": username, "password": password}])

    def put_gateway(self, name: str, device_ids: Iterable[str], password: str | None) -> str:
        """Create or update gateway `name` fronting `device_ids`; its password (new if None)."""
        return self.put_gateway_role(name, device_ids, password)[0]

    def regrant_gateway(self, name: str, device_ids: Iterable[str], old_role: str) -> str:
        """Gateway `name` (whose client exists and holds `old_role`) fronts `device_ids` from
        now on: a new role swapped in, four commands; the new role's name."""
        username = gateway_username(name)
        role = f"{username}.{secrets.token_hex(4)}"
        self.run(
            [
                {"command": "createRole", "rolename": role, "acls": gateway_acls(device_ids)},
                {"command": "addClientRole", "username": username, "rolename": role},
                {"command": "removeClientRole", "username": username, "rolename": old_role},
                {"command": "deleteRole", "rolename": old_role},
            ]
        )
        return role

    def put_gateway_role(
        self, name: str, device_ids: Iterable[str], password: str | None
    ) -> tuple[str, str]:
        """put_gateway, returning (password, the name of the role it now holds).

        A new generation of its role is made with every rule in one command and swapped in
        (four commands whatever the number of devices: the plugin rewrites its whole state
        file after each command, so one command per rule would take minutes for a large
        gateway). The old role is deleted only once no client holds it (deleting a held role
        crashes Mosquitto 2.0.11's plugin). The plugin disconnects the gateway's client when
        its roles change; it reconnects with the same password."""
        username = gateway_username(name)
        role = f"{username}.{secrets.token_hex(4)}"
        got = self.run(
            [{"command": "getClient", "username": username}], ok_errors=("Client not found",)
        )
        exists = not got[0].get("error")
        old = [r["rolename"] for r in got[0]["data"]["client"].get("roles", [])] if exists else []
        password = password or secrets.token_urlsafe(24)
        cmds: list[dict[str, Any]] = [
            {"command": "createRole", "rolename": role, "acls": gateway_acls(device_ids)}
        ]
        if exists:
            cmds.append(
                {"command": "setClientPassword", "username": username, "password": password}
            )
            cmds.append({"command": "addClientRole", "username": username, "rolename": role})
            cmds += [
                {"command": "removeClientRole", "username": username, "rolename": r} for r in old
            ]
            cmds += [{"command": "deleteRole", "rolename": r} for r in old]
        else:
            cmds.append(
                {
                    "command": "createClient",
                    "username": username,
                    "password": password,
                    "roles": [{"rolename": role}],
                }
            )
        self.run(cmds)
        return password, role


def gateway_username(name: str) -> str:
    """gateway-<name>: the broker user of a gateway (name: letters, digits, '-', '_')."""
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"gateway name {name!r}: 1-64 letters, digits, '-' or '_'")
    return GATEWAY_PREFIX + name


def gateway_account(
    name: str,
    device_ids: Iterable[str],
    password: str | None = None,
    settings: Settings | None = None,
) -> tuple[str, str]:
    """Give gateway `name` a broker account that may publish for exactly `device_ids` (and read
    their command topics); called again, it replaces the device list (and the password when
    one is given, else a new one is drawn). Returns (username, password)."""
    with DynsecAdmin(settings) as admin:
        return gateway_username(name), admin.put_gateway(name, device_ids, password)


def sync_devices(
    device_ids: Iterable[str] | None = None,
    settings: Settings | None = None,
    allow_restart: bool = False,
) -> None:
    """Bring the broker's device clients in line with the database: for `device_ids` only, or
    (None) all of them. Used by the provisioner and after bulk changes.

    The plugin rewrites its whole state file after every command (~60 ms per command at a few
    thousand devices), so with `allow_restart` (an explicit bulk load, never the provisioner) a
    change of more than BULK_COMMANDS clients on the local broker rebuilds the file and restarts
    the broker instead (sessions and the default plain ingest subscription are restored from its
    persistence file; devices reconnect). Without it, a large change only adds the missing
    devices and leaves removals to their own retire events."""
    settings = settings or get_settings()
    with DynsecAdmin(settings) as admin:
        if device_ids is not None:
            ids = list(device_ids)
            active = active_devices(settings, ids)
            admin.put_devices({d: active[d] for d in ids if d in active})
            admin.remove_devices(d for d in ids if d not in active)
            return
        devices = active_devices(settings)
        names = admin.client_names()
        present = {n for n in names if is_device_username(n)}
        missing = {d: n for d, n in devices.items() if d not in present}
        extra = present - set(devices)
        small = len(missing) + len(extra) <= BULK_COMMANDS
        if small or not (allow_restart and settings.local_mqtt):
            admin.put_devices(missing, names)
            removed = extra if small else set()
            admin.remove_devices(removed)
            log.info("broker device clients: %d added, %d removed", len(missing), len(removed))
            return
    log.info(
        "broker device clients: %d to add, %d to remove: rebuilding and restarting the broker",
        len(missing),
        len(extra),
    )
    local_broker(settings).restart()


@dataclass(frozen=True)
class DynsecAccounts:
    """The broker's accounts as gridwatch.services.LocalMosquitto needs them (BrokerAccounts):
    the plugin's state and the ACL from the database and the contract, synced on reload."""

    settings: Settings

    def write_state(self, state: Path, acl: Path) -> None:
        """The plugin's state file and the static ACL (broker stopped)."""
        write_broker_files(state, acl, settings=self.settings)

    def sync(self) -> None:
        """Every device client in line with the database (a bulk change: a rebuild allowed)."""
        sync_devices(settings=self.settings, allow_restart=True)


def local_broker(settings: Settings | None = None) -> LocalMosquitto:
    """The local Mosquitto of `settings` with its accounts (start, restart and reload need them)."""
    settings = settings or get_settings()
    return LocalMosquitto(settings, DynsecAccounts(settings))


# --------------------------------------------------------------------------- device credentials


class CredentialsError(ValueError):
    """A device's credentials cannot be shown or reset; the message says why."""


def broker_url(settings: Settings) -> str:
    """mqtt://host:port devices connect to (no credentials in it)."""
    host, port = settings.mqtt_endpoint()
    return f"mqtt://{host}:{port}"


def reset_device_credentials(
    device_id: str, actor: str, settings: Settings | None = None, role: str = "owner"
) -> dict[str, str]:
    """Draw a new random nonce for the device (its old password stops working), push the new
    password to the broker and return {username, password, broker_url}: the only time the
    password is shown. CredentialsError for an unknown or retired device."""
    from sqlalchemy import text

    from gridwatch.db import get_engine

    settings = settings or get_settings()
    nonce = secrets.token_urlsafe(24)
    with get_engine(settings, role=role).begin() as conn:
        row = conn.execute(
            text("SELECT retired_at FROM devices WHERE id = :id FOR UPDATE"), {"id": device_id}
        ).first()
        if row is None:
            raise CredentialsError(f"device {device_id} is not registered")
        if row.retired_at is not None:
            raise CredentialsError(f"device {device_id} is retired; it has no broker access")
        conn.execute(
            text(
                "INSERT INTO device_mqtt_nonces (device_id, nonce, issued_by) "
                "VALUES (:id, :n, :by) ON CONFLICT (device_id) DO UPDATE "
                "SET nonce = EXCLUDED.nonce, issued_at = now(), issued_by = EXCLUDED.issued_by"
            ),
            {"id": device_id, "n": nonce, "by": actor},
        )
        conn.execute(
            text(
                "INSERT INTO audit_log (actor, action, entity, entity_id, detail) "
                "VALUES (:a, 'device.credentials_reset', 'device', :id, '{}'::jsonb)"
            ),
            {"a": actor, "id": device_id},
        )
        conn.execute(text("SELECT pg_notify('gw_broker', :id)"), {"id": device_id})
    password = device_password(device_id, device_key(settings), nonce)
    if settings.local_mqtt:
        try:  # at once, not only when the provisioner gets the event
            with DynsecAdmin(settings) as admin:
                admin.put_devices({device_id: nonce})
        except BrokerAdminError as exc:
            log.warning("broker not updated now (%s); the provisioner will", exc)
    return {"username": device_id, "password": password, "broker_url": broker_url(settings)}
