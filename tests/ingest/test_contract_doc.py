"""docs/mqtt.md says what hardware/contract says: topics, payload fields, analytics types, ACL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from hardware.contract import acl, payloads, topics

DOC = (Path(__file__).resolve().parents[2] / "docs" / "mqtt.md").read_text(encoding="utf-8")


def _section(heading: str) -> str:
    """The text under one `### heading` up to the next heading."""
    start = DOC.index(f"### `{heading}`")
    end = DOC.find("\n#", start + 4)
    return DOC[start : end if end != -1 else None]


def _table_names(section: str) -> set[str]:
    """The backticked names in the first column of a section's table (`a`, `b` rows split)."""
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names |= set(re.findall(r"`([a-z_]+)`", first))
    return names


def test_every_documented_topic_is_in_the_contract_and_back() -> None:
    documented = set(re.findall(r"^### `(gw/v1/[^`]+)`", DOC, flags=re.M))
    contract = {topics.device_topic("{id}", s) for s in topics.SUFFIXES}
    contract.add(topics.HUB_EVENTS_TOPIC)
    assert documented == contract


def test_subscriptions_and_device_acl_as_documented() -> None:
    inbound = "{" + ",".join(topics.INBOUND) + "}"
    assert f"`gw/v1/+/{inbound}`" in DOC  # the worker's subscriptions
    assert f"`gw/v1/{{its id}}/{inbound}`" in DOC  # what a device may publish
    assert topics.inbound_filters() == [f"gw/v1/+/{s}" for s in topics.INBOUND]
    patterns = dict((p, a) for a, p in topics.acl_patterns())
    assert patterns[topics.device_topic("%u", topics.COMMAND)] == "read"
    assert {p for p, a in patterns.items() if a == "write"} == {
        topics.device_topic("%u", s) for s in topics.INBOUND
    }
    device_role = acl.role_acls(acl.DEVICE_ROLE)
    assert acl.acl("subscribePattern", topics.command_filter()) in device_role


@pytest.mark.parametrize(
    ("suffix", "model"),
    [
        (topics.HEARTBEAT, payloads.Heartbeat),
        (topics.ALARM, payloads.Alarm),
        (topics.POSITION, payloads.Position),
    ],
)
def test_payload_tables_name_the_model_fields(suffix: str, model: type[BaseModel]) -> None:
    table = _table_names(_section(topics.device_topic("{id}", suffix)))
    assert table == set(model.model_fields), f"docs/mqtt.md {suffix} table vs {model.__name__}"


def test_analytics_types_as_documented() -> None:
    section = _section(topics.device_topic("{id}", topics.ANALYTICS))
    documented = {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", section, flags=re.M)} - {
        "type"
    }
    assert documented == set(payloads.ANALYTICS_TYPES) == set(payloads.ANALYTICS_ALARMS)
