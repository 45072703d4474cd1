"""The parse path under hostile input: every parser either returns a validated value or raises
PayloadError naming the problem; nothing else escapes, and nothing unstorable gets through."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.contract.payloads import (
    MAX_DEPTH,
    PayloadError,
    check_json,
    parse_alarm,
    parse_analytics,
    parse_heartbeat,
    parse_position,
    parse_state,
)
from ingest.events import dumps

PARSERS = [parse_heartbeat, parse_alarm, parse_position, parse_analytics, parse_state]
ALARM_HEAD = b'{"msg_id": "p-1", "ts": 1714552200, "kind": "panic", "severity": 1, "detail": '


def deep(n: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * n + close * n


POISON = {
    "5000 deep in state": b'{"state": ' + deep(5000) + b"}",
    "5000 deep objects": b'{"state": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
    "deep alarm detail": ALARM_HEAD + b'{"x": ' + deep(MAX_DEPTH + 5) + b"}}",
    "NaN in detail": ALARM_HEAD + b'{"x": NaN}}',
    "Infinity in detail": ALARM_HEAD + b'{"x": -Infinity}}',
    "1e400 in detail": ALARM_HEAD + b'{"x": 1e400}}',
    "integer past 64 bits": ALARM_HEAD + b'{"x": 123456789012345678901234567890}}',
    "5000-digit integer": ALARM_HEAD + b'{"x": ' + b"9" * 5000 + b"}}",
    "invalid UTF-8": ALARM_HEAD + b'{"x": "\xff\xfe"}}',
    "lone surrogate": ALARM_HEAD + b'{"x": "\\ud800"}}',
    "NUL": ALARM_HEAD + b'{"x": "a\\u0000"}}',
    "NaN timestamp": b'{"msg_id": "p", "ts": NaN, "kind": "panic", "severity": 1}',
    "NaN longitude": b'{"ts": 1714552200, "lon": NaN, "lat": 28.6}',
    "deep analytics extra": b'{"type": "motion", "ts": 1714552200, "x": ' + deep(200) + b"}",
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_every_poison_payload_is_a_payload_error_for_every_parser(name: str) -> None:
    raw = POISON[name]
    refused = 0
    for parse in PARSERS:
        try:
            parse(raw)
        except PayloadError as exc:
            assert str(exc), "the reason must not be empty"
            refused += 1
    assert refused >= 4, f"{name}: accepted by {5 - refused} parsers"


def test_reasons_name_the_problem() -> None:
    with pytest.raises(PayloadError, match="deeper than 32"):
        parse_state(b'{"state": ' + deep(40) + b"}")
    with pytest.raises(PayloadError, match="too long for a state"):
        parse_state(POISON["5000 deep in state"])
    with pytest.raises(PayloadError, match="NaN and Infinity"):
        parse_alarm(POISON["NaN in detail"])
    with pytest.raises(PayloadError, match=r"detail\.x: integer out of range"):
        parse_alarm(POISON["integer past 64 bits"])
    with pytest.raises(PayloadError, match="number out of range"):
        parse_alarm(POISON["1e400 in detail"])
    with pytest.raises(PayloadError, match="UTF-8"):
        parse_state(b"onl\xffine")


def test_ordinary_payloads_still_pass_the_gate() -> None:
    ok = parse_alarm(
        ALARM_HEAD + b'{"note": "NaN and Infinity are words", "big": 9223372036854775807, '
        b'"f": 1.5e300, "id": "36012100001320000001", "nest": ' + deep(MAX_DEPTH - 3) + b"}}"
    )
    assert ok.detail is not None and ok.detail["big"] == 2**63 - 1
    assert parse_state(b'{"state": "online"}') == "online"


# Values JSON may carry, including the hostile ones (NaN, infinities, huge integers, NUL).
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=40,
)


def _storable(value: object, depth: int = 0) -> bool:
    """What the database and a JavaScript reader can hold: finite numbers, 64-bit integers,
    no NUL, nesting within MAX_DEPTH."""
    if isinstance(value, dict):
        return depth < MAX_DEPTH and all(
            "\x00" not in k and _storable(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return depth < MAX_DEPTH and all(_storable(v, depth + 1) for v in value)
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return math.isfinite(value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(detail=st.dictionaries(st.text(max_size=4), _values, max_size=4))
def test_alarm_detail_is_stored_exactly_or_refused(detail: dict) -> None:
    raw = ALARM_HEAD + json.dumps(detail).encode() + b"}"  # json.dumps writes NaN/Infinity
    try:
        alarm = parse_alarm(raw)
    except PayloadError:
        assert not _storable(detail, 1)
        return
    assert _storable(detail, 1)
    # What the worker sends to the database reads back as what the device sent.
    assert json.loads(dumps(alarm.detail)) == detail


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=300))
def test_any_bytes_are_a_value_or_a_payload_error(raw: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(raw)
        except PayloadError:
            pass


@settings(max_examples=100, deadline=None)
@given(
    depth=st.integers(min_value=0, max_value=3000),
    opener=st.sampled_from([b"[", b'{"a":']),
    suffix=st.sampled_from([b"", b"garbage", b"NaN"]),
)
def test_any_nesting_is_bounded(depth: int, opener: bytes, suffix: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    raw = opener * depth + b"1" + closer * depth + suffix
    for parse in PARSERS:
        try:
            parse(raw)
        except PayloadError:
            pass
    if depth > MAX_DEPTH and not suffix:
        with pytest.raises(PayloadError, match="deeper"):
            check_json(raw)
