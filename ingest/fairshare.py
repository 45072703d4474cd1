"""Fair share per device: token-bucket rate limits, a dead-letter byte quota, and quarantine."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from ingest.config import IngestSettings

DAY_S = 86_400.0
OVER_WINDOW_S = 10.0  # over-limit messages are counted in windows of this length
PRUNE_EVERY_S = 60.0


class Verdict(IntEnum):
    """What happens to one message of a device."""

    ACCEPT = 0  # within the device's share: processed as usual
    LIMITED = 1  # over its rate: dead-lettered (while its dead-letter quota lasts)
    QUARANTINED = 2  # the device is quarantined: dropped (counted), not stored
    QUARANTINE_START = 3  # this message put the device in quarantine (tell the operators)


@dataclass(slots=True)
class _Share:
    msgs: float  # tokens: messages the device may still send now
    alarms: float
    dl_bytes: float  # dead-letter bytes it may still cost today
    at: float  # when the tokens were last refilled
    over: int = 0  # over-limit messages in the current window
    over_since: float = 0.0
    until: float = 0.0  # quarantined until (monotonic); 0 = not quarantined
    dropped: int = 0  # messages dropped in this quarantine
    why: str = ""
    started: float = 0.0  # wall-clock start of the current quarantine


class FairShare:
    """Per-key (a device id, or `pending:<centre code>` for unknown ids) budgets, in memory.

    Every key has three token buckets: messages/s and alarms/s (each holding burst_s seconds
    of its rate) and dead-letter bytes/day. A message beyond the rate is LIMITED; a key with
    `quarantine_after` LIMITED messages within OVER_WINDOW_S, or past its dead-letter bytes, is
    QUARANTINED for quarantine_s: its messages are dropped and counted, so one device costs the
    others nothing but the receiving and counting. Budgets are per worker process (workers on
    a shared subscription each see a share of a device's messages)."""

    def __init__(self, cfg: IngestSettings, clock=time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.shares: dict[str, _Share] = {}
        self.msg_cap = cfg.device_msgs_per_s * cfg.device_burst_s
        self.alarm_cap = cfg.device_alarms_per_s * cfg.device_burst_s
        self._pruned = clock()
        # The keys in quarantine now -> until (monotonic); small, read by the worker's network
        # thread to drop a quarantined device's messages before they cost anything more.
        self.active: dict[str, float] = {}
        # Told `active` the moment a quarantine starts, mid-batch: the worker stops the device
        # (network thread, broker gate) before the rest of its batch is even written.
        self.on_quarantine: Callable[[dict[str, float]], None] | None = None

    def _share(self, key: str, now: float) -> _Share:
        s = self.shares.get(key)
        cfg = self.cfg
        if s is None:
            s = _Share(
                self.msg_cap, self.alarm_cap, float(cfg.device_deadletter_bytes_per_day), now
            )
            self.shares[key] = s
        elif s.at != now:
            dt = now - s.at
            s.msgs = min(self.msg_cap, s.msgs + dt * cfg.device_msgs_per_s)
            s.alarms = min(self.alarm_cap, s.alarms + dt * cfg.device_alarms_per_s)
            s.dl_bytes = min(
                float(cfg.device_deadletter_bytes_per_day),
                s.dl_bytes + dt * cfg.device_deadletter_bytes_per_day / DAY_S,
            )
            s.at = now
        return s

    def admit(self, key: str, alarm: bool, now: float) -> Verdict:
        """Take one message (an alarm when `alarm`) from the key's budget."""
        s = self._share(key, now)
        if s.until:
            if now < s.until:
                s.dropped += 1
                return Verdict.QUARANTINED
            s.until, s.dropped, s.over = 0.0, 0, 0
            self.active.pop(key, None)
        if s.msgs >= 1.0 and (not alarm or s.alarms >= 1.0):
            s.msgs -= 1.0
            if alarm:
                s.alarms -= 1.0
            return Verdict.ACCEPT
        if now - s.over_since > OVER_WINDOW_S:
            s.over_since, s.over = now, 0
        s.over += 1
        if s.over >= self.cfg.quarantine_after:
            return self._quarantine(
                key,
                s,
                now,
                f"{s.over} messages over its share within {OVER_WINDOW_S:.0f} s (limits "
                f"{self.cfg.device_msgs_per_s:g} messages/s, {self.cfg.device_alarms_per_s:g} "
                "alarms/s)",
            )
        return Verdict.LIMITED

    def charge_dead_letter(self, key: str, nbytes: int, now: float) -> Verdict:
        """Take a dead letter's bytes from the key's daily quota: ACCEPT (store it), or the
        quarantine that running out of quota starts (or continues)."""
        s = self._share(key, now)
        if s.until and now < s.until:
            s.dropped += 1
            return Verdict.QUARANTINED
        if s.dl_bytes >= nbytes:
            s.dl_bytes -= nbytes
            return Verdict.ACCEPT
        return self._quarantine(
            key,
            s,
            now,
            f"dead letters over {self.cfg.device_deadletter_bytes_per_day:,} bytes/day",
        )

    def _quarantine(self, key: str, s: _Share, now: float, why: str) -> Verdict:
        s.until = now + self.cfg.quarantine_s
        # a new dict, not an update: the network thread reads it without a lock
        self.active = {k: u for k, u in self.active.items() if u > now} | {key: s.until}
        s.dropped = 0
        s.why = why
        s.started = time.time()
        if self.on_quarantine is not None:
            self.on_quarantine(self.active)
        return Verdict.QUARANTINE_START

    def why(self, key: str) -> str:
        s = self.shares.get(key)
        return s.why if s else ""

    def started(self, key: str) -> float:
        """Wall-clock start of the key's quarantine (0.0: never quarantined)."""
        s = self.shares.get(key)
        return s.started if s else 0.0

    def quarantined(self, now: float | None = None) -> dict[str, tuple[float, int, str]]:
        """Keys in quarantine now: (seconds left, messages dropped so far, why)."""
        now = self.clock() if now is None else now
        return {
            k: (s.until - now, s.dropped, s.why)
            for k, s in self.shares.items()
            if s.until and s.until > now
        }

    def prune(self, now: float) -> int:
        """Forget keys idle long enough for their buckets to be full again (memory stays
        bounded by the keys active in the last minutes, whatever ids a flood invents)."""
        if now - self._pruned < PRUNE_EVERY_S:
            return 0
        self._pruned = now
        idle = max(self.cfg.device_burst_s, OVER_WINDOW_S)
        day = float(self.cfg.device_deadletter_bytes_per_day)
        gone = [
            k
            for k, s in self.shares.items()
            if now - s.at > idle
            and (not s.until or s.until < now)
            and s.dl_bytes + (now - s.at) * day / DAY_S >= day
        ]
        for k in gone:
            del self.shares[k]
        return len(gone)
