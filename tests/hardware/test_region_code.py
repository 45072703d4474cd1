"""Division codes: prefix by whole level (never digit by digit), level, range, parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.region_code import RegionCode, RegionCodeError, region_prefix


@pytest.mark.parametrize(
    ("code", "prefix", "level"),
    [
        ("360000000000", "36", "province"),
        ("360100000000", "3601", "city"),
        ("360121000000", "360121", "county"),
        ("360121110000", "360121110", "township"),
        ("360121100000", "360121100", "township"),
        ("360121110201", "360121110201", "village"),
        ("441900003000", "441900003", "township"),  # a township of a city without counties
    ],
)
def test_prefix_and_level(code: str, prefix: str, level: str) -> None:
    rc = RegionCode.parse(code)
    assert rc.prefix == prefix and rc.level == level


def test_township_110_does_not_catch_townships_111_to_119() -> None:
    """A plain rstrip('0') turned 360121110000 into 36012111, which 360121111xxx starts with."""
    township = RegionCode.parse("360121110000")
    assert township.contains("360121110201")
    assert not township.contains("360121111201")
    assert not township.contains("360121119000")


def test_short_prefixes_are_padded() -> None:
    assert RegionCode.parse("3601").code == "360100000000"
    assert region_prefix("360121") == "360121"
    assert RegionCode.parse("360121110").range == ("360121110000", "360121110999")


@pytest.mark.parametrize("bad", ["", "36012", "3601211100001", "36012a000000", "360 121"])
def test_refuses_what_is_not_a_code(bad: str) -> None:
    with pytest.raises(RegionCodeError, match="not a division code"):
        RegionCode.parse(bad)


@given(st.from_regex(r"[0-9]{12}", fullmatch=True))
def test_every_code_lies_inside_its_own_region_and_range(code: str) -> None:
    rc = RegionCode.parse(code)
    lo, hi = rc.range
    assert rc.contains(code) and lo <= code <= hi
    assert RegionCode.parse(rc.prefix).prefix == rc.prefix
