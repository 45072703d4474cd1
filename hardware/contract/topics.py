"""The v1 topic contract: gw/v1/{20-digit id}/{heartbeat|alarm|position|analytics|snapshot|state}."""

from __future__ import annotations

from functools import lru_cache

from hardware.gbid import GbIdError, parse_device_id

PREFIX = "gw/v1/"
HEARTBEAT, ALARM, POSITION, ANALYTICS, SNAPSHOT, STATE = INBOUND = (
    "heartbeat",
    "alarm",
    "position",
    "analytics",
    "snapshot",
    "state",
)
COMMAND = "cmd"  # the one topic a device reads
SUFFIXES = (*INBOUND, COMMAND)
HUB_PREFIX = "gw/v1/hub/"
HUB_EVENTS_TOPIC = HUB_PREFIX + "events"  # the live event relay (ingest publishes, QoS 0)
VISION_PREFIX = HUB_PREFIX + "vision/"  # vision workers' retained status, one topic per worker
VISION_COMMAND_TOPIC = VISION_PREFIX + "cmd"  # operator commands to the vision workers
# Federation (federation/relay.py): a county's bridged hub events at its city, and commands
# between the levels (up at a county, down to a named county at a city).
FED_EVENTS_FILTER = "gw/fed/+/v1/hub/events"
FED_UPSTREAM_COMMANDS = "gw/fed/upstream/cmd/#"
FED_DOWN_COMMANDS = "gw/fed/+/down/cmd/#"


class TopicError(ValueError):
    """A topic outside the v1 contract; the message says what is wrong."""


@lru_cache(maxsize=262_144)
def check_device_id(device_id: str) -> str | None:
    """None when `device_id` is a valid GB/T 28181 id, else the reason it is not (cached)."""
    if len(device_id) != 20 or not device_id.isascii() or not device_id.isdigit():
        return f"device id {device_id!r} is not 20 ASCII digits"
    for edition in (2022, 2016):
        try:
            parse_device_id(device_id, edition)
            return None
        except (GbIdError, ValueError) as exc:
            reason = str(exc)
    return f"device id is not a valid GB/T 28181 code: {reason}"


def parse_topic(topic: str) -> tuple[str, str]:
    """(device_id, suffix) of an inbound v1 topic; TopicError with a readable reason otherwise.

    Only the shape is checked here (20 ASCII digits); whether the digits are a valid GB/T 28181
    code is checked with check_device_id for ids that are not registered devices (registered
    ones were validated when they were registered), which keeps the hot path cheap.
    """
    if not topic.startswith(PREFIX):
        raise TopicError(f"topic {topic!r} does not start with {PREFIX!r}")
    parts = topic[len(PREFIX) :].split("/")
    if len(parts) != 2:
        raise TopicError(f"topic {topic!r} is not gw/v1/{{id}}/{{{'|'.join(INBOUND)}}}")
    device_id, suffix = parts
    if suffix not in INBOUND:
        raise TopicError(f"topic suffix {suffix!r} is not one of {', '.join(INBOUND)}")
    if len(device_id) != 20 or not device_id.isascii() or not device_id.isdigit():
        raise TopicError(f"device id {device_id!r} is not 20 ASCII digits")
    return device_id, suffix


def subscriptions(share_group: str = "") -> list[str]:
    """The topic filters the ingest worker subscribes to (shared when share_group is set)."""
    filters = inbound_filters()
    if share_group:
        return [shared(share_group, f) for f in filters]
    return filters


# The topic patterns below are the single source for the ingest subscriptions, the broker's
# ACL (ingest/broker_acl.py) and the provisioning of devices and gateways.


def device_topic(device_id: str, suffix: str) -> str:
    """gw/v1/{id}/{suffix} (no checks: also builds ACL patterns such as gw/v1/%u/cmd)."""
    return f"{PREFIX}{device_id}/{suffix}"


def topic(device_id: str, suffix: str) -> str:
    """The topic of one device's stream, e.g. gw/v1/{id}/heartbeat; ValueError for a suffix
    outside the contract."""
    if suffix not in SUFFIXES:
        raise ValueError(f"topic suffix: {suffix!r} is not one of {', '.join(SUFFIXES)}")
    return device_topic(device_id, suffix)


def device_topics(device_id: str) -> dict[str, str]:
    """{suffix: topic} of every topic of one device: what it publishes and its command topic."""
    return {suffix: device_topic(device_id, suffix) for suffix in SUFFIXES}


def vision_status_topic(worker: str) -> str:
    """gw/v1/hub/vision/{worker}: a vision worker's retained status."""
    return VISION_PREFIX + worker


def device_inbound_topics(device_id: str) -> list[str]:
    """The topics a device (or a gateway fronting it) may publish to."""
    return [device_topic(device_id, s) for s in INBOUND]


def inbound_filters(suffixes: tuple[str, ...] = INBOUND) -> list[str]:
    """gw/v1/+/{suffix} for every inbound suffix: what ingest reads."""
    return [f"{PREFIX}+/{s}" for s in suffixes]


def command_filter() -> str:
    """gw/v1/+/cmd: every device's command topic (the API publishes there)."""
    return f"{PREFIX}+/{COMMAND}"


def shared(group: str, topic_filter: str) -> str:
    """The shared-subscription form of a filter; group '+' is the ACL pattern for any group."""
    return f"$share/{group}/{topic_filter}"


def acl_patterns() -> list[tuple[str, str]]:
    """(access, pattern) lines of the static per-device ACL, %u = the device's user name (its id)."""
    out = [("write", device_topic("%u", s)) for s in INBOUND]
    out.append(("read", device_topic("%u", COMMAND)))
    return out
