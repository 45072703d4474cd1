"""Per-device budgets (ingest/fairshare.py), on a clock the test moves."""

from __future__ import annotations

from ingest.config import IngestSettings
from ingest.fairshare import FairShare, Verdict


def share(**kw) -> FairShare:
    base = dict(
        device_msgs_per_s=10.0,
        device_alarms_per_s=2.0,
        device_burst_s=5.0,
        quarantine_after=20,
        quarantine_s=60.0,
        device_deadletter_bytes_per_day=1000,
    )
    base.update(kw)
    return FairShare(IngestSettings(**base), clock=lambda: 0.0)


def test_bursts_then_the_rate() -> None:
    fs = share()
    got = [fs.admit("d", False, 0.0) for _ in range(60)]
    assert got.count(Verdict.ACCEPT) == 50  # 10/s x 5 s
    assert got[50:] == [Verdict.LIMITED] * 10
    assert fs.admit("d", False, 0.5) == Verdict.ACCEPT  # 5 tokens back after 0.5 s
    assert fs.admit("other", False, 0.5) == Verdict.ACCEPT  # every key has its own budget


def test_alarms_have_their_own_smaller_rate() -> None:
    fs = share()
    got = [fs.admit("d", True, 0.0) for _ in range(12)]
    assert got.count(Verdict.ACCEPT) == 10  # 2/s x 5 s
    assert fs.admit("d", False, 0.0) == Verdict.ACCEPT  # heartbeats still pass


def test_a_flood_is_quarantined_once_then_dropped_until_it_ends() -> None:
    fs = share()
    got = [fs.admit("d", True, 0.0) for _ in range(100)]
    assert got.count(Verdict.QUARANTINE_START) == 1
    start = got.index(Verdict.QUARANTINE_START)
    assert got[10:start] == [Verdict.LIMITED] * 19  # quarantine_after - 1 dead-lettered first
    assert set(got[start + 1 :]) == {Verdict.QUARANTINED}
    left, dropped, why = fs.quarantined(1.0)["d"]
    assert left == 59.0 and dropped == 100 - start - 1 and "over its share" in why
    assert fs.admit("d", True, 61.0) == Verdict.ACCEPT  # released, buckets full again
    assert "d" not in fs.quarantined(61.0)


def test_the_worker_is_told_the_moment_a_quarantine_starts() -> None:
    """Mid-batch: the worker stops the device (network thread, broker gate) at the message that
    quarantined it, not after its batch is written."""
    fs = share()
    told: list[dict[str, float]] = []
    fs.on_quarantine = told.append
    for i in range(100):
        verdict = fs.admit("d", True, 0.0)
        if verdict == Verdict.QUARANTINE_START:
            assert told == [{"d": 60.0}] and told[0] is fs.active
            assert i == 10 + 20 - 1  # the alarm burst, then quarantine_after over it
        else:
            assert len(told) == (0 if i < 29 else 1)
    fs.admit("other", True, 0.0)
    assert len(told) == 1  # within its share: nothing to tell


def test_a_device_a_little_over_its_rate_is_limited_not_quarantined() -> None:
    fs = share(quarantine_after=10)
    for _ in range(10):
        fs.admit("d", True, 0.0)  # the alarm burst is spent
    verdicts = [fs.admit("d", True, i / 2.4) for i in range(1, 150)]  # 2.4/s against 2/s
    assert Verdict.LIMITED in verdicts
    assert Verdict.QUARANTINE_START not in verdicts and Verdict.QUARANTINED not in verdicts


def test_dead_letter_bytes_per_day() -> None:
    fs = share()
    assert fs.charge_dead_letter("d", 600, 0.0) == Verdict.ACCEPT
    assert fs.charge_dead_letter("d", 600, 0.0) == Verdict.QUARANTINE_START
    assert "bytes/day" in fs.why("d")
    assert fs.charge_dead_letter("d", 1, 1.0) == Verdict.QUARANTINED
    # a day later (after the quarantine) the quota is whole again
    assert fs.charge_dead_letter("d", 900, 86_400.0) == Verdict.ACCEPT


def test_idle_keys_are_forgotten() -> None:
    fs = share()
    for i in range(1000):
        fs.admit(f"pending:{i:08d}", False, 0.0)
    fs.admit("busy", False, 0.0)
    fs.charge_dead_letter("noisy", 500, 0.0)
    assert fs.prune(120.0) == 1001
    assert set(fs.shares) == {"noisy"}  # its dead-letter quota is still being paid back
