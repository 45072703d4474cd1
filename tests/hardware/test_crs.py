"""WGS 84 / GCJ-02 / BD-09 conversions: round trips, the offset near Nanchang, identity abroad."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from hardware.crs import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = Geod(ellps="WGS84")
china_lon = st.floats(min_value=73.5, max_value=134.5)
china_lat = st.floats(min_value=18.0, max_value=53.0)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


def test_nanchang_offset_is_a_few_hundred_metres_north_east_ish() -> None:
    wgs = (115.9, 28.68)
    gcj = wgs84_to_gcj02(*wgs)
    assert 300 < metres(wgs, gcj) < 900
    assert gcj[0] > wgs[0]  # GCJ-02 shifts eastward in Jiangxi
    bd = wgs84_to_bd09(*wgs)
    assert 300 < metres(gcj, bd) < 1500


@settings(max_examples=200)
@given(china_lon, china_lat)
def test_gcj02_round_trip_below_1e6_degrees(lon: float, lat: float) -> None:
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert back == pytest.approx((lon, lat), abs=1e-6)


@settings(max_examples=200)
@given(china_lon, china_lat)
def test_bd09_round_trips(lon: float, lat: float) -> None:
    assert bd09_to_gcj02(*gcj02_to_bd09(lon, lat)) == pytest.approx((lon, lat), abs=1e-6)
    assert bd09_to_wgs84(*wgs84_to_bd09(lon, lat)) == pytest.approx((lon, lat), abs=1e-6)


@pytest.mark.parametrize(("lon", "lat"), [(2.35, 48.85), (-74.0, 40.7), (151.2, -33.9)])
def test_outside_china_gcj02_is_identity(lon: float, lat: float) -> None:
    assert out_of_china(lon, lat)
    assert wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert gcj02_to_wgs84(lon, lat) == (lon, lat)
    assert to_wgs84(lon, lat, "gcj02") == (lon, lat)


def test_to_wgs84_dispatches_on_crs_name() -> None:
    wgs = (115.9, 28.68)
    assert to_wgs84(*wgs, "wgs84") == wgs
    assert to_wgs84(*from_wgs84(*wgs, "gcj02"), "GCJ-02") == pytest.approx(wgs, abs=1e-6)
    assert to_wgs84(*from_wgs84(*wgs, "bd09"), "bd09") == pytest.approx(wgs, abs=1e-6)


def test_bad_crs_and_coordinates_are_refused() -> None:
    with pytest.raises(ValueError, match="crs: 'utm50' is not supported.*wgs84, gcj02, bd09"):
        to_wgs84(115.9, 28.68, "utm50")
    with pytest.raises(ValueError, match="lat: 95"):
        to_wgs84(115.9, 95, "gcj02")
