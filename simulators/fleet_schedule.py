"""The fleet's timetable: what each device sends when, as a deterministic stream of due events."""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from hardware.crs import from_wgs84
from simulators.fleet_model import SNAPSHOT_FAULTS, FleetDevice, FleetOptions
from simulators.fleet_motion import GrazingMotion, PatrolMotion, Polyline
from simulators.fleet_rng import Rng

# Streams of events a device may have; the value is also the key of its random draws.
HEARTBEAT, POSITION, ALARM, SNAPSHOT, OUTAGE = range(5)
STREAM_NAMES = ("heartbeat", "position", "alarm", "snapshot", "outage")

# Alarms each sensor kind raises: (alarm kind, severity 1 = most urgent .. 4, rate per hour,
# rate multiplier at night). Intruders come at night; smoke and panic do not care.
ALARM_PROFILES: dict[str, tuple[tuple[str, int, float, float], ...]] = {
    "infrared_detector": (("infrared_intrusion", 2, 0.10, 5.0),),
    "door_sensor": (("door_forced", 2, 0.03, 3.0),),
    "smoke_detector": (("smoke", 1, 0.01, 1.0),),
    "panic_button": (("panic", 1, 0.02, 1.0),),
    "alarm_input": (("infrared_intrusion", 2, 0.05, 5.0), ("door_forced", 2, 0.02, 3.0)),
    "patrol_car": (("panic", 1, 0.005, 1.0),),
}
_BATTERY_KINDS = ("smoke_detector", "door_sensor", "panic_button", "livestock_collar")
NIGHT_START_H, NIGHT_END_H = 19.0, 6.0  # China Standard Time (UTC+8)

FLAP_UP_MEAN_S, FLAP_DOWN_MEAN_S = 120.0, 40.0
UNRELIABLE_UP_MEAN_S = 4 * 3600.0
FAULT_ONSET_WINDOW_S = 3600.0


def is_night(t_sim: float) -> bool:
    """Whether it is night in China (UTC+8) at simulated epoch t."""
    hour = ((t_sim + 8 * 3600) % 86_400) / 3600.0
    return hour >= NIGHT_START_H or hour < NIGHT_END_H


class Event(NamedTuple):
    """One due action: simulated time, device index, stream; payload built on demand.

    A tuple, so the heap orders events by time (then device, stream) with no extra objects.
    """

    t: float
    dev: int
    stream: int
    n: int  # how many events this device-stream had before (keys its random draws)


class Schedule:
    """Every device's next events in one heap, popped in time order up to a simulated time.

    Times are simulated epoch seconds from `t0`. The sequence of events is a pure function of
    the devices, options and t0, however fast or slowly it is consumed.
    """

    def __init__(self, devices: Sequence[FleetDevice], options: FleetOptions, t0: float) -> None:
        self.devices = devices
        self.options = options
        self.t0 = t0
        self.rng = Rng(options.seed, 0x5C4ED)
        self.heap: list[Event] = []
        self.online = bytearray(b"\x01") * len(devices)
        self.alarm_seq = [0] * len(devices)
        self.motion: dict[int, PatrolMotion | GrazingMotion] = {}
        self.fault: dict[int, tuple[str, float]] = {}  # dev -> (fault, onset simulated time)
        self.flapping: set[int] = set()
        self.unreliable: set[int] = set()
        routes: dict[int, Polyline] = {}
        rng = self.rng
        # per-device facts looked up on every event, kept in flat lists
        self.interval = [d.heartbeat_interval_s for d in devices]
        self.position_s = [float(d.spec.position_s or 60) for d in devices]
        self.hb_style = [
            1 if d.spec.has_fov else 2 if d.spec.name in _BATTERY_KINDS else 0 for d in devices
        ]
        for i, d in enumerate(devices):
            spec = d.spec
            phase = rng.uniform(i, HEARTBEAT, 0)
            self._push(t0 + phase * d.heartbeat_interval_s, i, HEARTBEAT, 0)
            if spec.position_s and d.route is not None:
                route = routes.get(id(d.route))
                if route is None:
                    route = routes[id(d.route)] = Polyline(d.route)
                cls = PatrolMotion if spec.name == "patrol_car" else GrazingMotion
                self.motion[i] = cls(route, rng, i)
            if spec.position_s and (i in self.motion):
                self._push(t0 + rng.uniform(i, POSITION, 0) * spec.position_s, i, POSITION, 0)
            if self._alarm_profile(i):
                self._push(self._next_alarm_time(i, t0, 0), i, ALARM, 0)
            if (
                "snapshot" in spec.publishes
                and rng.uniform(i, SNAPSHOT, 1) < options.snapshot_fraction
            ):
                self._push(t0 + rng.uniform(i, SNAPSHOT, 0) * options.snapshot_s, i, SNAPSHOT, 0)
                if d.fault is not None:
                    self.fault[i] = (d.fault, t0)
                elif rng.uniform(i, SNAPSHOT, 2) < options.fault_fraction:
                    fault = rng.choice(SNAPSHOT_FAULTS, i, SNAPSHOT, 3)
                    self.fault[i] = (fault, t0 + rng.uniform(i, SNAPSHOT, 4) * FAULT_ONSET_WINDOW_S)
            u = rng.uniform(i, OUTAGE, 0)
            if u < options.flapping_fraction:
                self.flapping.add(i)
            elif spec.has_fov and u < options.flapping_fraction + options.unreliable_fraction:
                self.unreliable.add(i)
            if i in self.flapping or i in self.unreliable:
                self._push(t0 + self._up_time(i, 0), i, OUTAGE, 0)

    # ---- timetable ----------------------------------------------------------------------------

    def _push(self, t: float, dev: int, stream: int, n: int) -> None:
        heapq.heappush(self.heap, Event(t, dev, stream, n))

    def _alarm_profile(self, dev: int) -> tuple[tuple[str, int, float, float], ...]:
        return ALARM_PROFILES.get(self.devices[dev].spec.name, ())

    def _max_alarm_rate(self, dev: int) -> float:
        scale = self.options.alarm_rate_scale
        return sum(rate * max(1.0, night) for _, _, rate, night in self._alarm_profile(dev)) * scale

    def _alarm_rate(self, dev: int, t: float) -> float:
        night = is_night(t)
        scale = self.options.alarm_rate_scale
        return (
            sum(rate * (nf if night else 1.0) for _, _, rate, nf in self._alarm_profile(dev))
            * scale
        )

    def _next_alarm_time(self, dev: int, t: float, n: int) -> float:
        """Next alarm by thinning a Poisson process at the maximum rate (night rates vary)."""
        peak = self._max_alarm_rate(dev)
        if peak <= 0:
            return math.inf
        k = 0
        while True:
            t += self.rng.exponential(3600.0 / peak, dev, ALARM, n, k, 0)
            if self.rng.uniform(dev, ALARM, n, k, 1) * peak <= self._alarm_rate(dev, t):
                return t
            k += 1

    def _up_time(self, dev: int, n: int) -> float:
        mean = FLAP_UP_MEAN_S if dev in self.flapping else UNRELIABLE_UP_MEAN_S
        return self.rng.exponential(mean, dev, OUTAGE, n, 1)

    def _down_time(self, dev: int, n: int) -> float:
        mean = FLAP_DOWN_MEAN_S if dev in self.flapping else self.options.outage_mean_s
        return max(1.0, self.rng.exponential(mean, dev, OUTAGE, n, 2))

    def peek(self) -> float:
        """Simulated time of the next event (inf when none)."""
        return self.heap[0][0] if self.heap else math.inf

    def due(self, until: float) -> Iterator[Event]:
        """Pop events with t <= until in time order, rescheduling each stream's next event."""
        heap = self.heap
        pop, push, interval = heapq.heappop, heapq.heappush, self.interval
        while heap and heap[0][0] <= until:
            ev = pop(heap)
            # reschedule before yielding, so a consumer that stops early loses nothing
            if ev.stream == HEARTBEAT:
                push(heap, Event(ev.t + interval[ev.dev], ev.dev, HEARTBEAT, ev.n + 1))
            else:
                self._reschedule(*ev)
            yield ev

    def _reschedule(self, t: float, dev: int, stream: int, n: int) -> None:
        if stream == HEARTBEAT:
            self._push(t + self.interval[dev], dev, stream, n + 1)
        elif stream == POSITION:
            self._push(t + self.position_s[dev], dev, stream, n + 1)
        elif stream == SNAPSHOT:
            self._push(t + self.options.snapshot_s, dev, stream, n + 1)
        elif stream == ALARM:
            nxt = self._next_alarm_time(dev, t, n + 1)
            if math.isfinite(nxt):
                self._push(nxt, dev, stream, n + 1)
        elif stream == OUTAGE:
            # even n: the device goes down now; odd n: it comes back now
            gap = self._down_time(dev, n) if n % 2 == 0 else self._up_time(dev, n)
            self._push(t + gap, dev, stream, n + 1)

    # ---- payloads -----------------------------------------------------------------------------

    def heartbeat(self, ev: Event, ts: float) -> bytes:
        """{ts, status, metrics}: uptime; cameras add fps and bitrate, battery sensors a charge."""
        uptime = int(ev.t - self.t0)
        style = self.hb_style[ev.dev]
        if style == 1:
            kbps = 2048 + (self.rng.bits(ev.dev, HEARTBEAT, ev.n) & 511)
            extra = f',"fps":25,"bitrate_kbps":{kbps}'
        elif style == 2:
            extra = f',"battery_pct":{max(5, 100 - ev.n // 24)}'
        else:
            extra = ""
        # formatted by hand: this is the hottest payload, and json.dumps is 3x slower
        return (
            f'{{"ts":{ts:.3f},"status":"ok","metrics":{{"uptime_s":{uptime}{extra}}}}}'
        ).encode()

    def position(self, ev: Event, ts: float) -> bytes:
        d = self.devices[ev.dev]
        lon, lat, speed, heading = self.motion[ev.dev].at(ev.t - self.t0)
        if d.crs != "wgs84":
            lon, lat = from_wgs84(lon, lat, d.crs)
        body = {
            "ts": round(ts, 3),
            "lon": round(lon, 7),
            "lat": round(lat, 7),
            "crs": d.crs,
            "speed": round(speed, 1),
            "heading": round(heading, 1),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def alarm(self, ev: Event, ts: float, run_tag: str) -> tuple[str, bytes]:
        """(msg_id, payload) of one alarm; the msg_id is unique per run, device and alarm."""
        d = self.devices[ev.dev]
        profile = self._alarm_profile(ev.dev)
        night = is_night(ev.t)
        weights = [rate * (nf if night else 1.0) for _, _, rate, nf in profile]
        pick = self.rng.uniform(ev.dev, ALARM, ev.n, 99) * sum(weights)
        choice = len(profile) - 1
        for j, w in enumerate(weights):
            if pick < w:
                choice = j
                break
            pick -= w
        kind, severity = profile[choice][0], profile[choice][1]
        self.alarm_seq[ev.dev] += 1
        msg_id = f"{run_tag}-{ev.dev:x}-{ev.n:x}"
        lon, lat = d.lon, d.lat
        crs = "wgs84"
        if ev.dev in self.motion:
            lon, lat, _, _ = self.motion[ev.dev].at(ev.t - self.t0)
            if d.crs != "wgs84":
                lon, lat = from_wgs84(lon, lat, d.crs)
                crs = d.crs
        body = {
            "msg_id": msg_id,
            "ts": round(ts, 3),
            "kind": kind,
            "severity": severity,
            "lon": round(lon, 7),
            "lat": round(lat, 7),
            "crs": crs,
            "detail": {"source": d.spec.name, "night": night, "simulated": True},
        }
        return msg_id, json.dumps(body, separators=(",", ":")).encode()

    def fault_at(self, dev: int, t: float) -> str | None:
        """The picture fault camera `dev` shows at simulated time t, if any."""
        entry = self.fault.get(dev)
        if entry is None or t < entry[1]:
            return None
        return entry[0]
