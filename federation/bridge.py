"""Live events between a county's broker and its city's: a Mosquitto bridge (QoS 1, persistent
session, its own least-privilege account at the city, topics remapped under the county's prefix).

    county gw/v1/hub/events          -> city gw/fed/<county>/v1/hub/events   (the live event bus)
    county gw/fed/upstream/cmd/<c>   <- city gw/fed/<county>/down/cmd/<c>     (alarm commands)
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from federation.replication import HOST, HUB_ID, FederationError

FED_PREFIX = "gw/fed/"
#: Where commands from the upstream hub arrive on the county's own broker.
DOWN_LOCAL = FED_PREFIX + "upstream/cmd/"
BRIDGE_FILE = "federation.conf"


def up_topic(hub_id: str) -> str:
    """The county's live events at the city."""
    return f"{FED_PREFIX}{hub_id}/v1/hub/events"


def down_topic(hub_id: str, command: str) -> str:
    """Where the city publishes a command for a county."""
    return f"{FED_PREFIX}{hub_id}/down/cmd/{command}"


def account(hub_id: str) -> str:
    """The county bridge's user name at the city's broker."""
    return f"fed-{hub_id}"


def provision_city_account(city_settings: Any, hub_id: str) -> str:
    """At the city's broker (its admin account): the county's bridge account, which may publish
    only under gw/fed/<county>/ (not below down/) and read only gw/fed/<county>/down/; a new
    password each time (returned)."""
    from hardware.contract.acl import DENY_REST
    from hardware.contract.acl import acl as _acl
    from ingest.broker_acl import DynsecAdmin

    if not HUB_ID.match(hub_id):
        raise FederationError(f"{hub_id!r} is not a hub id")
    user, password = account(hub_id), secrets.token_urlsafe(32)
    base = f"{FED_PREFIX}{hub_id}/"
    acls = [
        _acl("publishClientSend", base + "down/#", allow=False, priority=20),
        _acl("publishClientSend", base + "#"),
        _acl("subscribePattern", base + "down/#"),
        _acl("publishClientReceive", base + "down/#"),
        *DENY_REST,
    ]
    with DynsecAdmin(city_settings) as admin:
        admin.run(
            [{"command": "createRole", "rolename": user, "acls": []}],
            ok_errors=("Role already exists",),
        )
        # the role's ACL is set afresh (a rejoin after a change of rules gets the new ones)
        role = admin.run([{"command": "getRole", "rolename": user}])
        for old in role[0].get("data", {}).get("role", {}).get("acls", []):
            admin.run(
                [
                    {
                        "command": "removeRoleACL",
                        "rolename": user,
                        "acltype": old["acltype"],
                        "topic": old["topic"],
                    }
                ]
            )
        admin.run([{"command": "addRoleACL", "rolename": user, **acl} for acl in acls])
        admin.put_client(user, password, user)
    return password


def bridge_conf(hub_id: str, host: str, port: int, password: str) -> str:
    """The county broker's bridge section (mosquitto.conf syntax)."""
    if not HUB_ID.match(hub_id) or not HOST.match(host):
        raise FederationError("a bridge needs a hub id and a host name")
    if any(c in password for c in "\r\n ") or not password:
        raise FederationError("the bridge password must be one word")
    return (
        "# written by gridwatch federation join: this hub's live events to its city\n"
        f"connection gw-fed-{hub_id}\n"
        f"address {host}:{int(port)}\n"
        f"remote_username {account(hub_id)}\n"
        f"remote_password {password}\n"
        f"remote_clientid {account(hub_id)}\n"
        f"local_clientid gw-fed-local-{hub_id}\n"
        # a persistent session at both ends: QoS 1 messages wait while the link is down
        "cleansession false\n"
        "bridge_protocol_version mqttv311\n"
        "try_private false\n"
        "notifications false\n"
        "restart_timeout 1 10\n"
        "keepalive_interval 20\n"
        f"topic hub/events out 1 gw/v1/ {FED_PREFIX}{hub_id}/v1/\n"
        f"topic cmd/# in 1 {FED_PREFIX}upstream/ {FED_PREFIX}{hub_id}/down/\n"
    )


def write_bridge(mqtt_root: Path, conf: str) -> Path:
    """Put the bridge where the local broker's config includes it (mode 0600: a password)."""
    import os

    folder = mqtt_root / "bridge.d"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / BRIDGE_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(conf)
    return path


def set_up_bridge(county_settings: Any, city_settings: Any, hub_id: str) -> Path:
    """The county's bridge to the city: its account at the city's broker (with the city's admin
    account), the bridge file beside the county's broker config, and a restart of the county's
    local broker to open it (an external broker: include the file yourself)."""
    from ingest.broker_acl import local_broker

    password = provision_city_account(city_settings, hub_id)
    host, port = city_settings.mqtt_endpoint()
    local = local_broker(county_settings)
    path = write_bridge(local.root, bridge_conf(hub_id, host, port, password))
    if county_settings.local_mqtt and local.running():
        local.restart()
    return path
