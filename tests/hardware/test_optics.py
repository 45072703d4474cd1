"""Camera optics against DESIGN §5.4 worked by hand, plus refusal of bad lens/sensor/resolution."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.optics import (
    DORI_PPM,
    SENSOR_FORMATS,
    OpticsError,
    hfov_deg,
    optics,
    parse_focal,
    parse_resolution,
    sensor_format,
)


def test_hand_worked_fixed_lens() -> None:
    # 1/2.8" (5.568 mm wide), 4 mm, 1920 px: HFOV = 2*atan(5.568/8) = 69.68 deg;
    # observe range = 1920*4 / (5.568*62.5) = 22.07 m; identify = 5.52 m.
    cam = optics(4, "1/2.8", "1920x1080")
    assert cam.hfov_deg() == pytest.approx(69.68, abs=0.01)
    assert cam.dori_range_m("observe") == pytest.approx(22.07, abs=0.01)
    assert cam.dori_range_m("identify") == pytest.approx(5.52, abs=0.01)
    assert cam.ppm_at(10) == pytest.approx(137.93, abs=0.01)


def test_varifocal_reports_both_ends() -> None:
    cam = optics("2.8-12mm", '1/2.7"', "2560x1440")
    wide, tele = cam.reports()
    assert (wide.focal_mm, tele.focal_mm) == (2.8, 12.0)
    assert wide.hfov_deg > tele.hfov_deg
    # ranges scale linearly with focal length
    assert tele.dori_m["detect"] / wide.dori_m["detect"] == pytest.approx(12 / 2.8)
    with pytest.raises(OpticsError, match="focal: 20"):
        cam.hfov_deg(20)


def test_dori_levels_are_en62676_densities() -> None:
    assert DORI_PPM == {"detect": 25, "observe": 62.5, "recognise": 125, "identify": 250}
    cam = optics(6, "1/3", "1280x720")
    ranges = [cam.dori_range_m(level) for level in DORI_PPM]
    assert ranges == sorted(ranges, reverse=True)
    for level, d in zip(DORI_PPM, ranges, strict=True):
        assert cam.ppm_at(d) == pytest.approx(DORI_PPM[level])


def test_sensor_widths_are_ordered_and_plausible() -> None:
    assert 5.5 < sensor_format("1/2.8").width_mm < 5.7
    assert sensor_format('1/2.9"').width_mm < sensor_format("1/2.8 inch").width_mm
    assert sensor_format("1/2.8-inch").width_mm < sensor_format("1/2.7").width_mm
    assert (
        sensor_format("1/4").width_mm
        < sensor_format("1/3").width_mm
        < sensor_format("1/1.8").width_mm
        < sensor_format("2/3").width_mm
        < sensor_format("1").width_mm
    )
    for name in ("1/4", "1/3", "1/2.9", "1/2.8", "1/2.7", "1/2.5", "1/1.8", "2/3", "1"):
        assert name in SENSOR_FORMATS


@given(st.floats(min_value=0.5, max_value=2000), st.sampled_from(sorted(SENSOR_FORMATS)))
def test_hfov_is_between_0_and_180_and_falls_with_focal(focal: float, sensor: str) -> None:
    w = SENSOR_FORMATS[sensor].width_mm
    fov = hfov_deg(focal, w)
    assert 0 < fov < 180
    assert hfov_deg(focal * 2, w) < fov
    assert math.tan(math.radians(fov / 2)) * 2 * focal == pytest.approx(w)


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"focal": -4}, "focal", "0.5-2000 mm"),
        ({"focal": "abc"}, "focal", "varifocal range"),
        ({"focal": "12-2.8"}, "focal", "wide-tele"),
        ({"focal": 4, "sensor": "1/9"}, "sensor", '1/2.8"'),
        ({"focal": 4, "resolution": "abc"}, "resolution", "WIDTHxHEIGHT"),
        ({"focal": 4, "resolution": "0x1080"}, "resolution width", "16-16384"),
        ({"focal": 4, "sensor_width_mm": 200}, "sensor_width_mm", "0.5-50"),
    ],
)
def test_bad_inputs_name_field_and_allowed_range(kwargs: dict, field: str, allowed: str) -> None:
    with pytest.raises(OpticsError) as err:
        optics(**kwargs)
    assert err.value.field == field
    assert str(err.value).startswith(field + ":")
    assert allowed in str(err.value)


def test_parsers_accept_common_spellings() -> None:
    assert parse_resolution("1920*1080") == (1920, 1080)
    assert parse_resolution("4MP") == (2560, 1440)
    assert parse_focal("2.8~12") == (2.8, 12.0)
    assert parse_focal(4) == (4.0, 4.0)
    assert optics(4, None, "1920x1080", sensor_width_mm=5.0).sensor_width_mm == 5.0
