"""Broker ACL patterns of the wire contract: what each broker role may publish and read.

Dynamic-security ACL entries per role (hub services, simulators and gateways, the device role),
a gateway's per-device ACL and the static per-device pattern ACL file (Mosquitto's `%u` is the
device's user name, its id). Every topic comes from hardware.contract.topics; ingest/broker_acl.py
writes these into the broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hardware.contract import topics

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
DEVICE_ROLE = "device"


def acl(acltype: str, topic: str, allow: bool = True, priority: int = 10) -> dict[str, Any]:
    """One dynamic-security ACL entry."""
    return {"acltype": acltype, "topic": topic, "allow": allow, "priority": priority}


# Whatever a role does not grant it may not subscribe to ('#' matches every filter, $share too).
DENY_REST = [acl("subscribePattern", "#", allow=False, priority=0)]


def _reads(filters: Iterable[str], shared_too: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in filters:
        out.append(acl("subscribeLiteral", f))
        out.append(acl("publishClientReceive", f))
        if shared_too:
            out.append(acl("subscribePattern", topics.shared("+", f)))
    return out


def role_acls(role: str) -> list[dict[str, Any]]:
    """The ACL of a hub role or of the device role."""
    if role == "ingest":  # the only reader of devices' inbound topics and of the share group
        acls = _reads(topics.inbound_filters(), shared_too=True)
        acls += _reads([topics.HUB_EVENTS_TOPIC])
        acls.append(acl("publishClientSend", topics.HUB_EVENTS_TOPIC))
    elif (
        role == "api"
    ):  # sends commands (to devices; to a federated county's alarms), reads the relay
        acls = [acl("publishClientSend", topics.command_filter())]
        acls.append(acl("publishClientSend", topics.FED_DOWN_COMMANDS))
        acls += _reads([topics.HUB_EVENTS_TOPIC])
    elif role == "vision":  # reads snapshots, publishes analytics and its own status
        acls = _reads(topics.inbound_filters((topics.SNAPSHOT,)), shared_too=True)
        acls.append(acl("publishClientSend", topics.inbound_filters((topics.ANALYTICS,))[0]))
        acls.append(acl("publishClientSend", topics.HUB_PREFIX + "vision/+"))
    elif role == "simulator":  # demo and benchmark fleets publishing for many devices
        acls = [acl("publishClientSend", f) for f in topics.inbound_filters()]
        acls += _reads([topics.command_filter()])
    elif role == "admin":
        acls = [
            acl("publishClientSend", CONTROL_TOPIC),
            acl("subscribeLiteral", RESPONSE_TOPIC),
            acl("publishClientReceive", RESPONSE_TOPIC),
        ]
    elif role == "federation":
        # the federation relay (federation/relay.py): at a city, the counties' bridged events
        # in and commands down; at a county, the commands its city sent
        acls = _reads([topics.FED_EVENTS_FILTER, topics.FED_UPSTREAM_COMMANDS])
        acls.append(acl("publishClientSend", topics.FED_DOWN_COMMANDS))
    elif role == DEVICE_ROLE:
        # Devices may subscribe to command topics only; what they receive is limited to their
        # own by the pattern ACL (read gw/v1/%u/cmd), and they publish per that ACL too.
        acls = [acl("subscribePattern", topics.command_filter())]
    else:
        raise ValueError(f"unknown broker role {role!r}")
    return acls + DENY_REST


def gateway_acls(device_ids: Iterable[str]) -> list[dict[str, Any]]:
    """A gateway's ACL: publish the inbound topics of exactly the devices it fronts, read their
    command topics, nothing else.

    One publish rule per device (gw/v1/{id}/+, the command topic denied first): Mosquitto
    2.0.11's plugin tries a role's publish rules one by one, so their number is the cost of
    every message a gateway sends."""
    acls = [
        acl("publishClientSend", topics.command_filter(), allow=False, priority=20),
        acl("subscribeLiteral", topics.command_filter()),
        acl("subscribePattern", topics.command_filter()),
    ]
    for device_id in sorted(set(device_ids)):
        reason = topics.check_device_id(device_id)
        if reason:
            raise ValueError(reason)
        acls.append(acl("publishClientSend", topics.device_topic(device_id, "+")))
        acls.append(acl("publishClientReceive", topics.device_topic(device_id, topics.COMMAND)))
    return acls + DENY_REST


def acl_file_text() -> str:
    """The static per-device pattern ACL (written once; it names no device)."""
    lines = [
        "# written by gridwatch (hardware/contract/acl.py); the same for every start, no device named",
        "# per-device rules: a device's user name is its 20-digit id (Mosquitto %u)",
    ]
    lines += [f"pattern {access} {pattern}" for access, pattern in topics.acl_patterns()]
    return "\n".join(lines) + "\n"
