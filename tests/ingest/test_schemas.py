"""Payload schemas and topic contract: what is accepted, and the reason text of what is not."""

from __future__ import annotations

import time

import pytest

from hardware.contract.payloads import (
    PayloadError,
    check_snapshot,
    parse_alarm,
    parse_analytics,
    parse_heartbeat,
    parse_position,
    parse_state,
)
from hardware.contract.topics import TopicError, check_device_id, parse_topic, subscriptions

GOOD_ID = "36012100001320000001"


def test_heartbeat_epoch_and_rfc3339_agree() -> None:
    a = parse_heartbeat(b'{"ts": 1714552200}')
    b = parse_heartbeat(b'{"ts": "2024-05-01T16:30:00+08:00", "status": "ok"}')
    assert a.ts == b.ts == 1714552200.0
    assert b.status == "ok"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b'{"ts": "2024-05-01T08:30:00"}', "no UTC offset"),
        (b'{"ts": 1714552200000}', "milliseconds"),
        (b'{"ts": true}', "boolean"),
        (b'{"ts": 1714552200, "colour": "red"}', "colour: is not a field"),
        (b"{not json", "not valid JSON"),
        (b"{}", "ts: Field required"),
        (b'{"ts": 100}', "before 2000"),
    ],
)
def test_heartbeat_errors_are_readable(raw: bytes, needle: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_heartbeat(raw)
    assert needle in str(info.value)


def test_future_timestamp_refused() -> None:
    with pytest.raises(PayloadError, match="future"):
        parse_heartbeat(f'{{"ts": {time.time() + 3 * 86400}}}'.encode())


def test_alarm_strict_types() -> None:
    ok = parse_alarm(b'{"msg_id": "m-1", "ts": 1714552200, "kind": "smoke", "severity": 2}')
    assert (ok.kind, ok.severity, ok.crs, ok.lon) == ("smoke", 2, "wgs84", None)
    with pytest.raises(PayloadError, match="severity"):
        parse_alarm(b'{"msg_id": "m-1", "ts": 1714552200, "kind": "smoke", "severity": "2"}')
    with pytest.raises(PayloadError, match="severity: Input should be less than or equal to 4"):
        parse_alarm(b'{"msg_id": "m-1", "ts": 1714552200, "kind": "smoke", "severity": 5}')
    with pytest.raises(PayloadError, match="lon and lat"):
        parse_alarm(
            b'{"msg_id": "m-1", "ts": 1714552200, "kind": "smoke", "severity": 1, "lon": 115.9}'
        )
    with pytest.raises(PayloadError, match="msg_id"):
        parse_alarm(b'{"ts": 1714552200, "kind": "smoke", "severity": 1}')


def test_gcj02_position_converted_to_wgs84() -> None:
    from hardware.crs import wgs84_to_gcj02

    lon, lat = 115.89, 28.68
    glon, glat = wgs84_to_gcj02(lon, lat)
    p = parse_position(
        f'{{"ts": 1714552200, "lon": {glon}, "lat": {glat}, "crs": "gcj02", "speed": 40}}'.encode()
    )
    assert p.crs == "wgs84"
    assert abs(p.lon - lon) < 1e-6 and abs(p.lat - lat) < 1e-6
    with pytest.raises(PayloadError, match="crs"):
        parse_position(b'{"ts": 1714552200, "lon": 1, "lat": 2, "crs": "utm"}')


def test_analytics_types() -> None:
    z = parse_analytics(b'{"ts": 1714552200, "type": "zone", "zone": "gate", "object": "person"}')
    assert z.type == "zone"
    q = parse_analytics(b'{"ts": 1714552200, "type": "quality", "faults": ["blur", "too_dark"]}')
    assert q.fault_codes() == ["blur", "too_dark"] and not q.is_intact()
    with pytest.raises(PayloadError, match="type: must be one of"):
        parse_analytics(b'{"ts": 1714552200, "type": "ufo"}')


def test_state_and_snapshot() -> None:
    assert parse_state(b"online") == "online"
    assert parse_state(b'"offline"') == "offline"
    assert parse_state(b'{"state": "Offline"}') == "offline"
    with pytest.raises(PayloadError, match="not online or offline"):
        parse_state(b"sleeping")
    assert check_snapshot(b"\xff\xd8\xff\xe0rest") == b"\xff\xd8\xff\xe0rest"
    with pytest.raises(PayloadError, match="not a JPEG"):
        check_snapshot(b"\x89PNG....")


def test_topics() -> None:
    assert parse_topic(f"gw/v1/{GOOD_ID}/alarm") == (GOOD_ID, "alarm")
    with pytest.raises(TopicError, match="20 ASCII digits"):
        parse_topic("gw/v1/123/alarm")
    assert "province" in (check_device_id("99012100001320000001") or "")
    assert check_device_id(GOOD_ID) is None
    with pytest.raises(TopicError, match="suffix"):
        parse_topic(f"gw/v1/{GOOD_ID}/cmd")
    assert subscriptions("ingest")[0] == "$share/ingest/gw/v1/+/heartbeat"
    assert subscriptions("")[1] == "gw/v1/+/alarm"


def test_nul_in_free_form_text_is_refused_by_name() -> None:
    """jsonb cannot hold U+0000: the message is refused as invalid, not by the database."""
    raw = b'{"msg_id": "n-1", "ts": 1714552200, "kind": "panic", "severity": 1, "detail": {"k": ["a\\u0000"]}}'
    with pytest.raises(PayloadError, match="NUL"):
        parse_alarm(raw)
    with pytest.raises(PayloadError, match="NUL"):
        parse_analytics(b'{"type": "motion", "ts": 1714552200, "note": "\\u0000"}')
    # An escaped backslash before "u0000" is ordinary text.
    ok = parse_alarm(
        b'{"msg_id": "n-2", "ts": 1714552200, "kind": "panic", "severity": 1, "detail": {"k": "\\\\u0000"}}'
    )
    assert ok.detail == {"k": "\\u0000"}
