"""The virtual fleet runner: plays the timetable over MQTT on a sped-up clock and keeps a ledger."""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel

from simulators.fleet_model import FleetDevice, FleetOptions
from simulators.fleet_schedule import ALARM, HEARTBEAT, OUTAGE, POSITION, SNAPSHOT, Schedule
from simulators.fleet_snapshots import SnapshotMaker
from simulators.fleet_transport import PerDeviceLinks, PooledLinks

BATCH = 256  # events handled between two looks at the sockets
QOS = {"heartbeat": 0, "position": 0, "snapshot": 0, "alarm": 1, "state": 1}


class Ledger:
    """Everything the fleet sent, so a test can check nothing was lost on the way."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()  # per topic suffix, messages handed to the socket
        self.skipped_offline: Counter[str] = Counter()  # due while the device was in an outage
        self.not_connected: Counter[str] = Counter()  # due while its link was not (yet) up
        self.alarm_ids: set[str] = set()
        self.acked_alarm_ids: set[str] = set()
        self.states: Counter[str] = Counter()  # online/offline state messages sent
        self.outages = 0
        self.lock = threading.Lock()

    def ack(self, msg_id: str) -> None:
        self.acked_alarm_ids.add(msg_id)


class FleetSummary(BaseModel):
    """What a run did, for people (a table) and machines (--json)."""

    mode: str
    devices: int
    connections: int
    seed: int
    speed: float
    simulated_s: float
    wall_s: float
    connect_wall_s: float
    drain_wall_s: float = 0.0  # announcing offline, flushing and awaiting acks at the end
    sent: dict[str, int]
    sent_total: int
    sent_per_wall_s: float
    skipped_offline: dict[str, int]
    not_connected: dict[str, int]
    alarms_sent: int
    alarms_acked: int
    states: dict[str, int]
    outages: int
    wills_triggered: int
    reconnects: int = 0  # links lost without being asked (broker restart...) and reopened
    connect_failures: dict[str, int]
    publish_errors: int
    events: int
    behind_schedule: int
    behind_fraction: float
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    faults: dict[str, int]


class Fleet:
    """Drives a list of FleetDevices over MQTT.

    `connections=None` gives every device its own connection and credentials (user = id,
    password = device_password(id, secret)) with a retained Last Will; `connections=N` is the
    pooled benchmark mode (N hub-credential links). The clock runs `speed` times real time;
    simulated events that are handled more than `lag_tolerance_s` wall seconds after they were
    due count as behind schedule.
    """

    def __init__(
        self,
        devices: Sequence[FleetDevice],
        options: FleetOptions,
        host: str,
        port: int,
        *,
        secret: str | None = None,
        hub: tuple[str, str] | None = None,
        connections: int | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.devices = list(devices)
        self.options = options
        self.say = say or (lambda _m: None)
        self.ledger = Ledger()
        ids = [d.id for d in self.devices]
        if len(set(ids)) != len(ids):
            dupes = [k for k, v in Counter(ids).items() if v > 1][:3]
            raise ValueError(f"devices: duplicate ids {', '.join(dupes)}")
        if connections is None:
            if secret is None:
                raise ValueError("secret: needed for per-device credentials")
            self.links: PerDeviceLinks | PooledLinks = PerDeviceLinks(host, port, secret, ids)
        else:
            if hub is None:
                raise ValueError("hub: (user, password) needed for pooled connections")
            self.links = PooledLinks(host, port, hub[0], hub[1], ids, connections)
        self.links.on_state = self._count_state
        self.links.pool.on_ack = self.ledger.ack
        self.snapshots: SnapshotMaker | None = None
        self.schedule: Schedule | None = None
        self._stop = threading.Event()
        self._lags = array("d")

    def _count_state(self, dev: int, state: str) -> None:
        self.ledger.sent["state"] += 1
        self.ledger.states[state] += 1

    def stop(self) -> None:
        """Ask a running fleet to finish (thread-safe; also used by signal handlers)."""
        self._stop.set()

    # ---- one event ----------------------------------------------------------------------------

    def _handle(self, ev, ts: float) -> None:
        sched = self.schedule
        assert sched is not None
        ledger = self.ledger
        dev = ev.dev
        if ev.stream == OUTAGE:
            if ev.n % 2 == 0:
                sched.online[dev] = 0
                ledger.outages += 1
                self.links.go_offline(dev)
            else:
                sched.online[dev] = 1
                self.links.go_online(dev)
            return
        suffix = _SUFFIX[ev.stream]
        if not sched.online[dev]:
            ledger.skipped_offline[suffix] += 1
            return
        msg_id = None
        if ev.stream == HEARTBEAT:
            payload = sched.heartbeat(ev, ts)
        elif ev.stream == POSITION:
            payload = sched.position(ev, ts)
        elif ev.stream == ALARM:
            msg_id, payload = sched.alarm(ev, ts, self.run_tag)
        else:
            if self.snapshots is None:
                self.snapshots = SnapshotMaker(self.options.seed, self.options.snapshot_size)
            payload = self.snapshots.jpeg(dev, ev.t, sched.fault_at(dev, ev.t))
        if self.links.publish(dev, suffix, payload, QOS[suffix], msg_id=msg_id):
            ledger.sent[suffix] += 1
            if msg_id is not None:
                ledger.alarm_ids.add(msg_id)
        else:
            ledger.not_connected[suffix] += 1

    # ---- the run ------------------------------------------------------------------------------

    def run(
        self, connect_timeout_s: float = 600.0, drain_s: float = 30.0, progress_s: float = 0.0
    ) -> FleetSummary:
        """Connect, play the timetable until duration_s simulated seconds (or stop()), drain.

        With `progress_s` > 0, says how far it got every that many wall seconds.
        """
        opts = self.options
        c0 = time.monotonic()
        self.say(f"connecting {len(self.devices)} device(s) ({self.links.mode})")
        self.links.start(connect_timeout_s)
        connect_wall = time.monotonic() - c0
        t0 = opts.start_at if opts.start_at is not None else time.time()
        self.run_tag = opts.run_tag or f"r{int(time.time() * 1000):x}"
        self.schedule = sched = Schedule(self.devices, opts, t0)
        t_end = t0 + opts.duration_s if opts.duration_s else math.inf
        speed, tolerance = opts.speed, opts.lag_tolerance_s
        wall_stamp = opts.stamp == "wall"
        pool = self.links.pool
        lags = self._lags
        events = behind = 0
        m0 = time.monotonic()
        self.say(f"running at {speed:g}x; connected in {connect_wall:.1f} s")
        next_note = m0 + progress_s
        while not self._stop.is_set():
            now_m = time.monotonic()
            if progress_s > 0 and now_m >= next_note:
                next_note = now_m + progress_s
                self.say(
                    f"simulated {(now_m - m0) * speed:,.0f} s: {events:,} events, "
                    f"{sum(self.ledger.sent.values()):,} sent, {behind:,} behind schedule"
                )
            now_sim = t0 + (now_m - m0) * speed
            limit = min(now_sim, t_end)
            wall_now = time.time()
            handled = 0
            for ev in sched.due(limit):
                lag = time.monotonic() - (m0 + (ev.t - t0) / speed)
                lags.append(lag)
                if lag > tolerance:
                    behind += 1
                self._handle(ev, wall_now if wall_stamp else ev.t)
                handled += 1
                if handled % BATCH == 0:
                    pool.service(0)
                    while pool.backlog() and not self._stop.is_set():
                        pool.service(0.005)  # back-pressure: never run ahead of the sockets
                    wall_now = time.time()
                    if self._stop.is_set() or time.monotonic() - now_m > 0.2:
                        break
            events += handled
            if now_sim >= t_end and sched.peek() > t_end:
                break
            wait = (min(sched.peek(), t_end) - (t0 + (time.monotonic() - m0) * speed)) / speed
            pool.service(min(max(wait, 0.0), 0.05))
        wall = time.monotonic() - m0
        simulated = min(t0 + wall * speed, t_end) - t0
        self.say("stopping: announcing offline and draining")
        d0 = time.monotonic()
        self.links.stop(drain_s)
        summary = self._summary(connect_wall, wall, simulated, events, behind)
        summary.drain_wall_s = round(time.monotonic() - d0, 3)
        return summary

    def _summary(
        self, connect_wall: float, wall: float, simulated: float, events: int, behind: int
    ) -> FleetSummary:
        ledger, stats = self.ledger, self.links.pool.stats
        lags = np.frombuffer(self._lags, dtype=np.float64) if len(self._lags) else np.zeros(1)
        sent_total = sum(ledger.sent.values())
        faults = Counter(f for f, _ in (self.schedule.fault.values() if self.schedule else []))
        return FleetSummary(
            mode=self.links.mode,
            devices=len(self.devices),
            connections=len(self.devices) if self.links.mode == "per-device" else self.links.n,
            seed=self.options.seed,
            speed=self.options.speed,
            simulated_s=round(simulated, 3),
            wall_s=round(wall, 3),
            connect_wall_s=round(connect_wall, 3),
            sent=dict(ledger.sent),
            sent_total=sent_total,
            sent_per_wall_s=round(sent_total / wall, 1) if wall > 0 else 0.0,
            skipped_offline=dict(ledger.skipped_offline),
            not_connected=dict(ledger.not_connected),
            alarms_sent=len(ledger.alarm_ids),
            alarms_acked=len(ledger.acked_alarm_ids),
            states=dict(ledger.states),
            outages=ledger.outages,
            wills_triggered=stats.wills_triggered,
            reconnects=stats.reconnects,
            connect_failures=dict(stats.connect_failures),
            publish_errors=stats.publish_errors,
            events=events,
            behind_schedule=behind,
            behind_fraction=round(behind / events, 6) if events else 0.0,
            lag_p50_s=round(float(np.percentile(lags, 50)), 4),
            lag_p99_s=round(float(np.percentile(lags, 99)), 4),
            lag_max_s=round(float(lags.max()), 4),
            faults=dict(faults),
        )


_SUFFIX = {HEARTBEAT: "heartbeat", POSITION: "position", ALARM: "alarm", SNAPSHOT: "snapshot"}
