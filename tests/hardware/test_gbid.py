"""GB/T 28181 ID codec: decoding every field, division codes, errors naming digits, allocation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.gbid import (
    DeviceId,
    DivisionCode,
    GbIdError,
    allocate_ids,
    compose,
    parse_code,
    parse_device_id,
    province_names,
)


def test_decodes_every_field_of_a_common_camera_code() -> None:
    d = parse_device_id("34020000001320000001", edition=2016)
    assert (d.province, d.city, d.county, d.unit) == ("34", "02", "00", "00")
    assert d.province_name == "Anhui"
    assert d.centre_level == "city"
    assert d.industry == "00" and "roads" in d.industry_meaning
    assert d.type_code == 132 and d.type_meaning == "IP camera" and d.type_assigned
    assert d.type_family == "front-end peripheral"
    assert d.network == 0 and d.network_meaning == "monitoring/alarm private network"
    assert d.serial == "000001"
    assert d.edition == 2016


def test_network_identifier_depends_on_edition() -> None:
    code = "36012100001324000007"
    assert parse_device_id(code, edition=2016).network_meaning == "monitoring/alarm private network"
    assert (
        parse_device_id(code, edition=2022).network_meaning == "police mobile information network"
    )
    eight = "36012100001328000007"
    assert parse_device_id(eight, edition=2016).network_meaning == "social-resource access network"
    assert parse_device_id(eight, edition=2022).network_meaning == "dedicated line"


def test_type_codes_added_in_2022_are_extension_codes_in_2016() -> None:
    code = "36012100001210000001"  # 121 video checkpoint
    new = parse_device_id(code, edition=2022)
    old = parse_device_id(code, edition=2016)
    assert new.type_assigned and "checkpoint" in new.type_meaning
    assert not old.type_assigned and "unassigned" in old.type_meaning
    assert parse_device_id("36012100131320000001", edition=2022).industry_meaning == "railways"
    assert "reserved" in parse_device_id("36012100131320000001", edition=2016).industry_meaning


@pytest.mark.parametrize(
    ("code", "level"),
    [("36", "province"), ("3601", "city"), ("360121", "county"), ("36012101", "grassroots unit")],
)
def test_division_only_codes(code: str, level: str) -> None:
    d = parse_code(code)
    assert isinstance(d, DivisionCode)
    assert d.level == level and d.province_name == "Jiangxi"


def test_all_34_provinces_are_known() -> None:
    names = province_names()
    assert len(names) == 34
    assert names["11"][0] == "Beijing" and names["82"][0] == "Macau"
    for code in names:
        assert isinstance(parse_code(code), DivisionCode)


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("3402000000132000000", "19 characters"),
        ("340200000013200000011", "21 characters"),
        ("3402000000132000000x", "position(s) 20"),
        ("34020000001320 00001", "position(s) 15"),
        ("99020000001320000001", "digits 1-2 (province code) '99'"),
        ("36990000001320000001", "digits 3-4 (city code) '99'"),
        ("11050000001320000001", "municipality"),
        ("81010000001320000001", "no city codes"),
        ("36000100001320000001", "digits 5-6 (county code)"),
        ("34020000001050000001", "digits 11-13 (type code) '105'"),
    ],
)
def test_bad_codes_name_the_wrong_digits(code: str, needle: str) -> None:
    with pytest.raises(GbIdError) as err:
        parse_code(code)
    assert needle in str(err.value)


def test_full_width_digits_are_refused() -> None:
    with pytest.raises(GbIdError, match="not ASCII digits"):
        parse_code("３４020000001320000001")


def test_lookup_checks_city_and_county() -> None:
    known = {"360121001001", "360102"}
    assert parse_device_id("36012100001320000001", known=known).checked_against == "lookup"
    with pytest.raises(GbIdError, match="county 360122 is not in the division list"):
        parse_device_id("36012200001320000001", known=known)
    with pytest.raises(GbIdError, match="city 360300"):
        parse_device_id("36030000001320000001", known=known)
    assert parse_device_id("36012200001320000001", known=lambda c: True).county == "22"
    assert parse_device_id("36012200001320000001").checked_against == "structure"


def test_compose_round_trips() -> None:
    d = compose("36012101", 131, 42, industry=1, network=6, edition=2016)
    assert d.code == "36012101011316000042"
    again = parse_code(d.code, edition=2016)
    assert isinstance(again, DeviceId) and again == d


def test_allocation_skips_existing_serials_and_other_prefixes_do_not_matter() -> None:
    existing = ["36012100001320000001", "36012100001320000003", "36012100001310000002"]
    ids = [d.code for d in allocate_ids("360121", 132, 3, existing)]
    assert ids == ["36012100001320000002", "36012100001320000004", "36012100001320000005"]
    assert not set(ids) & set(existing)


@given(
    st.sets(st.integers(min_value=1, max_value=300), max_size=120),
    st.integers(min_value=1, max_value=50),
)
def test_allocation_never_collides(used: set[int], count: int) -> None:
    existing = [f"360121000013200{s:05d}" for s in used]
    new = allocate_ids("360121", 132, count, existing)
    codes = [d.code for d in new]
    assert len(set(codes)) == count
    assert not set(codes) & set(existing)
    assert all(parse_device_id(c).type_code == 132 for c in codes)


def test_bad_edition_and_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="edition: 2011"):
        parse_device_id("34020000001320000001", edition=2011)
    with pytest.raises(ValueError, match="serial"):
        compose("360121", 132, 1_000_000)
    with pytest.raises(ValueError, match="count"):
        allocate_ids("360121", 132, 0)
