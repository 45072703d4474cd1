"""The fleet timetable: deterministic, on interval, night-heavy intrusions, valid payloads, movers."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
from pyproj import Geod
from shapely.geometry import LineString, Point

from hardware.contract.payloads import parse_alarm, parse_heartbeat, parse_position
from hardware.crs import to_wgs84
from simulators.fleet_model import FleetDevice, FleetOptions, synthesize_fleet
from simulators.fleet_schedule import (
    ALARM,
    HEARTBEAT,
    OUTAGE,
    POSITION,
    Schedule,
    is_night,
)

GEOD = Geod(ellps="WGS84")
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC = 08:00 China Standard Time


def events(sched: Schedule, seconds: float) -> list[tuple[float, int, int, int]]:
    return [(e.t, e.dev, e.stream, e.n) for e in sched.due(sched.t0 + seconds)]


def test_same_seed_same_timetable_other_seed_differs() -> None:
    fleet = synthesize_fleet(120, seed=3)
    opts = FleetOptions(seed=9, alarm_rate_scale=20)
    a = events(Schedule(fleet, opts, T0), 7200)
    b = events(Schedule(fleet, opts, T0), 7200)
    c = events(Schedule(fleet, FleetOptions(seed=10, alarm_rate_scale=20), T0), 7200)
    assert a == b and len(a) > 1000
    assert a != c
    assert [e[0] for e in a] == sorted(e[0] for e in a)


def test_consuming_in_small_steps_gives_the_same_events() -> None:
    fleet = synthesize_fleet(60, seed=4)
    opts = FleetOptions(seed=1, alarm_rate_scale=50)
    whole = events(Schedule(fleet, opts, T0), 3600)
    sched = Schedule(fleet, opts, T0)
    pieces: list = []
    for step in range(1, 361):
        for e in sched.due(T0 + step * 10):
            pieces.append((e.t, e.dev, e.stream, e.n))
            if len(pieces) % 7 == 0:
                break  # a consumer that stops early loses nothing
    pieces += events(sched, 3600)
    assert pieces == whole


def test_heartbeats_come_at_each_devices_interval() -> None:
    fleet = synthesize_fleet(80, seed=2)
    sched = Schedule(fleet, FleetOptions(seed=2), T0)
    times: dict[int, list[float]] = defaultdict(list)
    for t, dev, stream, _ in events(sched, 4 * 3600):
        if stream == HEARTBEAT:
            times[dev].append(t)
    for dev, ts in times.items():
        gaps = {round(b - a, 6) for a, b in zip(ts, ts[1:], strict=False)}
        if gaps:
            assert gaps == {fleet[dev].heartbeat_interval_s}
        assert T0 <= ts[0] < T0 + fleet[dev].heartbeat_interval_s


def test_infrared_intrusions_are_more_frequent_at_night() -> None:
    detectors = [
        FleetDevice(
            id=f"360121000013400{i:05d}",
            kind="alarm_input",
            sub_kind="infrared_detector",
            lon=115.9,
            lat=28.68,
        )
        for i in range(1, 301)
    ]
    sched = Schedule(detectors, FleetOptions(seed=5, alarm_rate_scale=10), T0)
    night = day = 0
    for t, _, stream, _ in events(sched, 2 * 86_400):
        if stream == ALARM:
            night += is_night(t)
            day += not is_night(t)
    # 11 night hours at 5x the rate against 13 day hours: expect ~4.2x as many at night
    assert night > 2.5 * day > 0


def test_payloads_satisfy_the_ingest_contract() -> None:
    fleet = synthesize_fleet(200, seed=6)
    sched = Schedule(fleet, FleetOptions(seed=6, alarm_rate_scale=200), T0)
    seen: Counter[int] = Counter()
    ids: set[str] = set()
    for e in sched.due(T0 + 3600):
        ts = T0 + 1
        if e.stream == HEARTBEAT:
            hb = parse_heartbeat(sched.heartbeat(e, ts))
            assert hb.ts == pytest.approx(ts)
        elif e.stream == POSITION:
            pos = parse_position(sched.position(e, ts))
            assert 0 <= pos.heading <= 360 and pos.speed >= 0
        elif e.stream == ALARM:
            msg_id, raw = sched.alarm(e, ts, "t1")
            alarm = parse_alarm(raw)
            assert alarm.msg_id == msg_id and 1 <= alarm.severity <= 4
            ids.add(msg_id)
        seen[e.stream] += 1
    assert seen[HEARTBEAT] and seen[POSITION] and seen[ALARM] > 20
    assert len(ids) == seen[ALARM]  # every alarm has its own msg_id


def test_patrol_cars_stay_on_their_road_and_gcj02_reports_convert_back() -> None:
    fleet = [d for d in synthesize_fleet(2000, seed=7) if d.spec.name == "patrol_car"]
    sched = Schedule(fleet, FleetOptions(seed=7), T0)
    crs_seen = set()
    for e in sched.due(T0 + 1800):
        if e.stream != POSITION:
            continue
        d = fleet[e.dev]
        body = json.loads(sched.position(e, T0))
        crs_seen.add(body["crs"])
        lon, lat = to_wgs84(body["lon"], body["lat"], body["crs"])
        road = LineString(d.route)
        nearest = road.interpolate(road.project(Point(lon, lat)))
        assert GEOD.inv(lon, lat, nearest.x, nearest.y)[2] < 2.0  # metres
        assert 25 <= body["speed"] <= 50
    assert crs_seen == {"wgs84", "gcj02"}


def test_collars_graze_near_the_railway_and_sometimes_cross_it() -> None:
    fleet = [d for d in synthesize_fleet(3000, seed=8) if d.spec.name == "livestock_collar"]
    sched = Schedule(fleet, FleetOptions(seed=8), T0)
    rail = LineString(fleet[0].route)
    crossed = set()
    for e in sched.due(T0 + 86_400):
        if e.stream != POSITION:
            continue
        motion = sched.motion[e.dev]
        lon, lat, _, _ = motion.at(e.t - T0)
        nearest = rail.interpolate(rail.project(Point(lon, lat)))
        assert GEOD.inv(lon, lat, nearest.x, nearest.y)[2] < 1000
        if motion.distance_to_line_m(e.t - T0) <= 0:
            crossed.add(e.dev)
    assert 0 < len(crossed) < len(fleet)


def test_outages_alternate_down_and_up_for_flapping_devices() -> None:
    fleet = synthesize_fleet(300, seed=9)
    sched = Schedule(fleet, FleetOptions(seed=9, flapping_fraction=0.1), T0)
    assert sched.flapping
    per_dev: dict[int, list[int]] = defaultdict(list)
    for _t, dev, stream, n in events(sched, 3600):
        if stream == OUTAGE:
            per_dev[dev].append(n)
    assert per_dev and all(ns == list(range(len(ns))) for ns in per_dev.values())
    assert max(len(ns) for ns in per_dev.values()) >= 4  # flapping: several cycles an hour
