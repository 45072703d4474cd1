"""Counter-based random numbers for the fleet: a pure function of (seed, stream, keys), no state."""

from __future__ import annotations

import math

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def mix64(x: int) -> int:
    """SplitMix64 finaliser: a well-mixed 64-bit hash of a 64-bit integer."""
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class Rng:
    """Deterministic draws keyed by integers, so 100,000 devices need no per-device generator.

    `Rng(seed, stream).uniform(a, b)` is the same number on every run and machine, and
    independent of the order in which draws are made — the schedule stays reproducible however
    far the real clock falls behind.
    """

    __slots__ = ("_base",)

    def __init__(self, seed: int, stream: int = 0) -> None:
        self._base = mix64(mix64(seed & _MASK) ^ (stream & _MASK))

    def bits(self, *keys: int) -> int:
        h = self._base
        for k in keys:
            h = mix64(h ^ (k & _MASK))
        return h

    def uniform(self, *keys: int) -> float:
        """A float in [0, 1)."""
        return (self.bits(*keys) >> 11) * (1.0 / (1 << 53))

    def exponential(self, mean: float, *keys: int) -> float:
        """An exponential draw with the given mean (inter-arrival time of a Poisson process)."""
        return -mean * math.log(1.0 - self.uniform(*keys))

    def choice(self, options: tuple | list, *keys: int):
        return options[self.bits(*keys) % len(options)]
