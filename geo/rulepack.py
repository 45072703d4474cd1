"""Rule packs: the TOML data file of coverage rules and thresholds an auditor can copy and change."""

from __future__ import annotations

import hashlib
import tomllib
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_PACK = Path(__file__).parent / "rules" / "default.toml"

RuleKind = Literal[
    "village_points",
    "natural_village_points",
    "village_coverage",
    "smart_communities",
    "key_sites",
    "grid_tiling",
    "grid_workers",
    "grid_households",
    "networking_rate",
    "online_rate",
    "intact_rate",
    "hd_ratio",
]
RATE_KINDS = {
    "village_coverage",
    "smart_communities",
    "key_sites",
    "networking_rate",
    "online_rate",
    "intact_rate",
    "hd_ratio",
}


class RulePackError(ValueError):
    """A rule pack that cannot be used, saying which rule and field."""


class Params(BaseModel):
    """Pack-wide parameters."""

    model_config = ConfigDict(extra="forbid")

    point_cluster_m: float = Field(15.0, gt=0, le=1000)
    camera_kinds: list[str] = ["camera", "ip_camera", "checkpoint", "multi_lens_camera"]
    public_area_kinds: list[str] = [
        "station",
        "square",
        "dock",
        "city_exit",
        "checkpoint",
        "main_road",
    ]
    key_industry_kinds: list[str] = [
        "school",
        "hospital",
        "bank",
        "market",
        "government",
        "power",
        "water",
        "gas_station",
    ]
    min_polygon_share: float = Field(0.5, gt=0, le=1)
    min_line_share: float = Field(0.5, gt=0, le=1)
    min_tiling_area_m2: float = Field(10.0, ge=0)
    online_period_days: float = Field(7.0, gt=0, le=366)


class Rule(BaseModel):
    """One rule: what it measures (kind), its threshold, and where the requirement comes from."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    kind: RuleKind
    title: str
    source: str
    enabled: bool = True
    applies_to: Literal["administrative_villages", "communities", "all_villages"] = (
        "administrative_villages"
    )
    min: float | None = Field(None, ge=0)
    max: float | None = Field(None, ge=0)
    guideline: float | None = Field(None, ge=0)
    min_rate: float | None = Field(None, ge=0, le=1)
    levels: list[int] = [3]
    site_kinds: str | list[str] | None = None
    device_kinds: list[str] = []
    camera_set: Literal["all", "public_area", "key_industry"] = "all"
    min_width: int = 1920
    min_height: int = 1080
    registered_since: date | None = None

    @model_validator(mode="after")
    def _thresholds(self) -> Rule:
        needs_min = {"village_points", "natural_village_points", "grid_workers"}
        if self.kind in needs_min and self.min is None:
            raise ValueError(f"rule {self.id}: kind {self.kind} needs `min`")
        if self.kind == "grid_households" and self.max is None:
            raise ValueError(f"rule {self.id}: kind grid_households needs `max`")
        if self.kind in RATE_KINDS and self.min_rate is None:
            raise ValueError(f"rule {self.id}: kind {self.kind} needs `min_rate` (0-1)")
        if any(level not in (1, 2, 3) for level in self.levels):
            raise ValueError(f"rule {self.id}: levels must be among 1, 2, 3")
        return self

    @property
    def target(self) -> float | None:
        """The number a unit is held against (min, max or rate)."""
        if self.min_rate is not None:
            return self.min_rate
        return self.min if self.min is not None else self.max


class RulePack(BaseModel):
    """A named, versioned set of rules with pack-wide parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = 1
    params: Params = Params()
    rule: list[Rule]
    path: str | None = None
    sha256: str | None = None

    @model_validator(mode="after")
    def _unique(self) -> RulePack:
        ids = [r.id for r in self.rule]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule ids repeat: {', '.join(dupes)}")
        return self

    @property
    def rules(self) -> list[Rule]:
        return [r for r in self.rule if r.enabled]

    def site_kinds(self, rule: Rule) -> list[str]:
        """The key-site kinds a key_sites rule checks (a list, or the name of a params list)."""
        if rule.site_kinds is None or rule.site_kinds == "public_area_kinds":
            return self.params.public_area_kinds
        if rule.site_kinds == "key_industry_kinds":
            return self.params.key_industry_kinds
        if isinstance(rule.site_kinds, str):
            raise RulePackError(
                f"rule {rule.id}: site_kinds {rule.site_kinds!r} is not public_area_kinds, key_industry_kinds or a list"
            )
        return rule.site_kinds


def load_rule_pack(path: str | Path | None = None) -> RulePack:
    """Load and validate a rule pack (default: the built-in one); RulePackError says what is wrong."""
    path = Path(path) if path else DEFAULT_PACK
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulePackError(f"rule pack {path}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulePackError(f"rule pack {path}: not valid TOML: {exc}") from None
    try:
        pack = RulePack.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise RulePackError(
            f"rule pack {path}: {loc}: {first['msg'].removeprefix('Value error, ')}"
        ) from None
    pack.path = str(path)
    pack.sha256 = hashlib.sha256(data).hexdigest()
    return pack
