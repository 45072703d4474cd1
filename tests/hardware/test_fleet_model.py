"""FleetDevice validation and synthetic fleets: valid distinct IDs, the kind mix, determinism."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from hardware.gbid import parse_device_id
from simulators.fleet_model import FleetDevice, FleetOptions, synthesize_fleet


def test_synthetic_fleet_has_valid_distinct_ids_and_a_mix_of_kinds() -> None:
    fleet = synthesize_fleet(400, seed=5)
    assert len(fleet) == 400
    assert len({d.id for d in fleet}) == 400
    for d in fleet:
        assert parse_device_id(d.id).type_code == d.spec.type_code
    kinds = Counter(d.spec.name for d in fleet)
    assert kinds["ip_camera"] > kinds["smoke_detector"] > 0
    assert kinds["patrol_car"] > 0 and kinds["livestock_collar"] > 0
    movers = [d for d in fleet if d.spec.position_s]
    assert all(d.route and len(d.route) >= 2 for d in movers)
    assert {d.crs for d in movers} == {"wgs84", "gcj02"}


def test_synthetic_fleet_is_deterministic_by_seed() -> None:
    assert synthesize_fleet(50, seed=1) == synthesize_fleet(50, seed=1)
    a, b = synthesize_fleet(50, seed=1), synthesize_fleet(50, seed=2)
    assert [(d.lon, d.lat) for d in a] != [(d.lon, d.lat) for d in b]


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"id": "123"}, "id"),
        ({"kind": "toaster"}, "kind: 'toaster'"),
        ({"sub_kind": "toaster"}, "sub_kind"),
        ({"fault": "fire"}, "fault: 'fire'"),
        ({"route": ((115.9, 28.68),)}, "route"),
        ({"lat": 95}, "lat"),
        ({"heartbeat_s": 0}, "heartbeat_s"),
    ],
)
def test_bad_device_records_are_refused(fields: dict, needle: str) -> None:
    base = {"id": "36012100001320000001", "kind": "ip_camera", "lon": 115.9, "lat": 28.68}
    with pytest.raises(ValidationError) as err:
        FleetDevice(**{**base, **fields})
    assert needle in str(err.value)


def test_sub_kind_refines_the_spec_and_heartbeat_defaults_from_it() -> None:
    d = FleetDevice(
        id="36012100001340000001",
        kind="alarm_input",
        sub_kind="smoke_detector",
        lon=115.9,
        lat=28.7,
    )
    assert d.spec.name == "smoke_detector" and d.heartbeat_interval_s == d.spec.heartbeat_s
    assert FleetDevice(**{**d.model_dump(), "heartbeat_s": 30}).heartbeat_interval_s == 30


def test_options_refuse_nonsense() -> None:
    with pytest.raises(ValidationError, match="speed"):
        FleetOptions(speed=0)
    with pytest.raises(ValidationError, match="fault_fraction"):
        FleetOptions(fault_fraction=2)
