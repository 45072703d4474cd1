"""Division codes (统计用区划代码): level, significant prefix and range of a region code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["province", "city", "county", "township", "village"]
LEVELS: tuple[Level, ...] = ("province", "city", "county", "township", "village")
# Digits kept by each level: province 2, city 4, county 6 (= GB/T 2260), township 9, village 12.
PREFIX_LENGTHS: tuple[int, ...] = (2, 4, 6, 9, 12)


class RegionCodeError(ValueError):
    """A string that is not a division code."""


@dataclass(frozen=True, slots=True)
class RegionCode:
    """A division code, normalised to 12 digits; a shorter prefix (2, 4, 6 or 9) is padded."""

    code: str

    @classmethod
    def parse(cls, text: str) -> RegionCode:
        """Read '36', '3601', '360121', '360121110' or a 12-digit code; anything else is refused."""
        raw = text.strip()
        if not raw.isdigit() or len(raw) not in PREFIX_LENGTHS:
            raise RegionCodeError(
                f"region: {text!r} is not a division code (2, 4, 6, 9 or 12 digits)"
            )
        return cls(raw.ljust(12, "0"))

    @property
    def prefix(self) -> str:
        """The digits every code inside this region starts with (360121110000 -> 360121110).

        Zeros are stripped by whole level, never digit by digit: township 360121110 must not
        catch townships 111-119, as a plain rstrip('0') would.
        """
        for length in PREFIX_LENGTHS[:-1]:
            if set(self.code[length:]) <= {"0"}:
                return self.code[:length]
        return self.code

    @property
    def level(self) -> Level:
        """Province, city, county, township or village, from the deepest non-zero part."""
        return LEVELS[PREFIX_LENGTHS.index(len(self.prefix))]

    @property
    def depth(self) -> int:
        """The level as a number: 1 province … 5 village."""
        return LEVELS.index(self.level) + 1

    @property
    def range(self) -> tuple[str, str]:
        """(lowest, highest) 12-digit code inside the region: an index-friendly BETWEEN filter."""
        return self.prefix.ljust(12, "0"), self.prefix.ljust(12, "9")

    def contains(self, other: str) -> bool:
        """Whether the 12-digit code `other` lies inside this region (itself included)."""
        return other.startswith(self.prefix)


def region_prefix(code: str) -> str:
    """The significant prefix of a division code (see RegionCode.prefix)."""
    return RegionCode.parse(code).prefix
