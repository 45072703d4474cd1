"""Device kinds catalogue: type codes map to kinds, topics, heartbeats; unknown codes are 'other'."""

from __future__ import annotations

import pytest

from hardware.contract.topics import topic
from hardware.kinds import KINDS, kind, kind_for_device, kind_for_type, sub_kinds


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (131, "camera"),
        (132, "ip_camera"),
        (118, "nvr"),
        (111, "dvr"),
        (113, "encoder"),
        (117, "alarm_controller"),
        (134, "alarm_input"),
        (135, "alarm_output"),
        (121, "checkpoint"),
        (141, "access_gate"),
        (142, "smart_door"),
        (143, "credential_reader"),
        (138, "mobile"),
    ],
)
def test_standard_type_codes_map_to_kinds(code: int, name: str) -> None:
    spec = kind_for_type(code)
    assert spec.name == name and spec.type_code == code and not spec.flagged


def test_cameras_have_a_field_of_view_and_sensors_do_not() -> None:
    assert kind("camera").has_fov and kind("ip_camera").has_fov and kind("checkpoint").has_fov
    assert not kind("smoke_detector").has_fov and not kind("nvr").has_fov
    assert "snapshot" in kind("ip_camera").publishes
    assert "position" in kind("patrol_car").publishes
    assert "position" in kind("livestock_collar").publishes
    assert "cmd" in kind("voice_output").subscribes


def test_every_kind_uses_only_contract_topics_and_a_positive_heartbeat() -> None:
    for spec in KINDS.values():
        for suffix in spec.publishes + spec.subscribes:
            assert topic("36012100001320000001", suffix).endswith("/" + suffix)
        assert spec.heartbeat_s > 0
        if "position" in spec.publishes:
            assert spec.position_s and spec.position_s > 0


def test_local_sub_kinds_refine_standard_ones() -> None:
    names = {k.name for k in sub_kinds("alarm_input")}
    assert names == {"infrared_detector", "door_sensor", "smoke_detector", "panic_button"}
    assert kind("patrol_car").type_code == 138 and kind("patrol_car").parent == "mobile"
    assert kind("livestock_collar").type_code == 139


def test_unknown_well_formed_type_is_flagged_other() -> None:
    spec = kind_for_type(150)
    assert spec.name == "other" and spec.flagged and "150" in spec.note
    assert kind_for_type(121, edition=2016).flagged  # checkpoint only exists from 2022
    assert kind_for_device("36012100006500000001").flagged


def test_malformed_type_and_unknown_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="111-999"):
        kind_for_type(42)
    with pytest.raises(ValueError, match="kind: 'toaster'"):
        kind("toaster")
    with pytest.raises(ValueError, match="topic suffix"):
        topic("36012100001320000001", "video")


def test_hvr_is_119_in_2016_and_130_in_both() -> None:
    from hardware.kinds import kind_for_type

    assert kind_for_type(119, 2016).name == "hvr"
    assert kind_for_type(130, 2016).name == "hvr"
    assert kind_for_type(130, 2022).name == "hvr"
    assert kind_for_type(119, 2022).flagged  # unassigned in 2022: accepted as "other"


def test_external_platforms_500_501_are_2022_codes() -> None:
    from hardware.gbid import type_meaning

    assert type_meaning(500, 2022)[2] and type_meaning(501, 2022)[2]
    assert not type_meaning(500, 2016)[2]
