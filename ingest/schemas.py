"""Payload schemas of the v1 contract (pydantic v2, strict), with readable validation errors."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from hardware.crs import to_wgs84

EARLIEST_TS = 946_684_800.0  # 2000-01-01T00:00:00Z: older device clocks are wrong, not history
FUTURE_SLACK_S = 86_400.0  # a device clock may run up to a day fast
JPEG_MAGIC = b"\xff\xd8\xff"


class PayloadError(ValueError):
    """A payload that does not satisfy the contract; str() is the readable reason."""


def _to_epoch(value: Any) -> float:
    """Epoch seconds (int/float) or an RFC 3339 string with an offset -> float epoch seconds."""
    if isinstance(value, bool):
        raise ValueError("must be epoch seconds or an RFC 3339 time, not a boolean")
    if isinstance(value, int | float):
        ts = float(value)
        if not math.isfinite(ts):
            raise ValueError("must be a finite number of epoch seconds")
        if ts > 1e11:
            raise ValueError(f"{value} looks like milliseconds; send epoch seconds")
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an RFC 3339 time (e.g. 2024-05-01T08:30:00Z)"
            ) from None
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset; add Z or +08:00")
        ts = parsed.timestamp()
    else:
        raise ValueError("must be epoch seconds or an RFC 3339 time string")
    if ts < EARLIEST_TS:
        raise ValueError(f"{value!r} is before 2000-01-01; is the device clock set?")
    if ts > time.time() + FUTURE_SLACK_S:
        raise ValueError(f"{value!r} is more than a day in the future; is the device clock set?")
    return ts


Timestamp = Annotated[float, BeforeValidator(_to_epoch)]
Crs = Literal["wgs84", "gcj02", "bd09"]
Lon = Annotated[float, Field(ge=-180, le=180)]
Lat = Annotated[float, Field(ge=-90, le=90)]

_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Located(BaseModel):
    """Mixin: lon/lat in `crs`, converted to WGS 84 once validated."""

    @model_validator(mode="after")
    def _convert(self) -> _Located:
        lon, lat = getattr(self, "lon", None), getattr(self, "lat", None)
        if (lon is None) != (lat is None):
            raise ValueError("lon and lat must be given together")
        crs = getattr(self, "crs", "wgs84")
        if lon is not None and crs != "wgs84":
            wlon, wlat = to_wgs84(lon, lat, crs)
            object.__setattr__(self, "lon", wlon)
            object.__setattr__(self, "lat", wlat)
            object.__setattr__(self, "crs", "wgs84")
        return self


class Heartbeat(BaseModel):
    """gw/v1/{id}/heartbeat: the device is alive; optional status word and numeric metrics."""

    model_config = _STRICT
    ts: Timestamp
    status: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    metrics: Annotated[dict[str, float | int | str | bool | None], Field(max_length=64)] | None = (
        None
    )


class Alarm(_Located):
    """gw/v1/{id}/alarm: one alarm; msg_id is unique per device and makes redelivery harmless."""

    model_config = _STRICT
    msg_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
    ts: Timestamp
    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
    severity: Annotated[int, Field(ge=1, le=4)]
    lon: Lon | None = None
    lat: Lat | None = None
    crs: Crs = "wgs84"
    detail: dict[str, Any] | None = None


class Position(_Located):
    """gw/v1/{id}/position: where a patrol car or tracker is; speed km/h, heading degrees."""

    model_config = _STRICT
    ts: Timestamp
    lon: Lon
    lat: Lat
    crs: Crs = "wgs84"
    speed: Annotated[float, Field(ge=0, le=500)] | None = None
    heading: Annotated[float, Field(ge=0, le=360)] | None = None


class _Analytics(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)
    ts: Timestamp
    msg_id: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")] | None
    ) = None


class FaultScore(BaseModel):
    """One active fault as the vision worker reports it: code, score and the threshold crossed."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)
    code: Annotated[str, Field(min_length=1, max_length=32)]
    score: float | None = None
    threshold: float | None = None


class QualityResult(_Analytics):
    """Video-quality diagnosis of one camera: intact, or its faults (DESIGN §5.5). Faults may be
    codes, {code, score, threshold} objects (vision/events.py) or a {code: score} map."""

    type: Literal["quality"]
    intact: bool | None = None
    faults: (
        list[Annotated[str, Field(min_length=1, max_length=32)] | FaultScore] | dict[str, float]
    ) = Field(default_factory=list)
    metrics: dict[str, Any] | None = None
    thumbnail: str | None = None  # base64 JPEG, small
    thumbnail_jpeg_b64: str | None = None

    def fault_codes(self) -> list[str]:
        if isinstance(self.faults, dict):
            return sorted(self.faults)
        return sorted({f if isinstance(f, str) else f.code for f in self.faults})

    def scores(self) -> dict[str, float]:
        if isinstance(self.faults, dict):
            return dict(self.faults)
        return {
            f.code: f.score for f in self.faults if not isinstance(f, str) and f.score is not None
        }

    def thumbnail_b64(self) -> str | None:
        return self.thumbnail or self.thumbnail_jpeg_b64

    def is_intact(self) -> bool:
        return not self.fault_codes() if self.intact is None else self.intact


class MotionResult(_Analytics):
    """Motion seen in the picture (a weak signal: severity 4 alarm, merged while it lasts)."""

    type: Literal["motion"]
    score: float | None = None


class ZoneResult(_Analytics):
    """An object entered (or is inside) a watched zone."""

    type: Literal["zone"]
    zone: Annotated[str, Field(min_length=1, max_length=64)]
    object: str | None = None


class TripwireResult(_Analytics):
    """An object crossed a virtual line."""

    type: Literal["tripwire"]
    line: Annotated[str, Field(min_length=1, max_length=64)]
    direction: str | None = None
    object: str | None = None


class DwellResult(_Analytics):
    """An object stayed in a zone longer than allowed (loitering)."""

    type: Literal["dwell"]
    zone: Annotated[str, Field(min_length=1, max_length=64)]
    seconds: Annotated[float, Field(ge=0)]
    object: str | None = None


AnalyticsResult = QualityResult | MotionResult | ZoneResult | TripwireResult | DwellResult
# gw/v1/{id}/analytics: one vision result, told apart by its `type`.
_ANALYTICS = TypeAdapter(Annotated[AnalyticsResult, Field(discriminator="type")])
ANALYTICS_TYPES = ("quality", "motion", "zone", "tripwire", "dwell")


# Which alarm an analytics result raises: (kind, severity).
ANALYTICS_ALARMS: dict[str, tuple[str, int]] = {
    "motion": ("motion", 4),
    "zone": ("zone_intrusion", 2),
    "tripwire": ("tripwire_crossing", 2),
    "dwell": ("loitering", 3),
    "quality": ("video_quality", 3),
}


def describe(exc: ValidationError) -> str:
    """One line naming each failing field and why, e.g. `severity: must be <= 4 (got 7)`."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = (
            ".".join(
                str(p)
                for p in err["loc"][1 if err["loc"] and err["loc"][0] in ANALYTICS_TYPES else 0 :]
            )
            or "payload"
        )
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] in ("json_invalid", "json_type"):
            return f"not valid JSON: {msg}"
        if err["type"] == "extra_forbidden":
            msg = "is not a field of this message"
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            parts.append(f"type: must be one of {', '.join(ANALYTICS_TYPES)}")
            continue
        if "input" in err and err["type"] not in ("missing", "extra_forbidden", "value_error"):
            shown = repr(err["input"])
            msg += f" (got {shown[:40]})"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_heartbeat(raw: bytes) -> Heartbeat:
    try:
        return Heartbeat.model_validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(describe(exc)) from None


def _check_nul(raw: bytes, parsed: BaseModel) -> None:
    """Free-form parts (alarm detail, analytics extras) are stored as jsonb, which cannot hold
    U+0000: refuse such a message by name rather than let the database refuse its batch."""
    if b"\\u0000" in raw and _has_nul(parsed.model_dump(mode="python")):
        raise PayloadError("text contains \\u0000 (NUL), which cannot be stored; remove it")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def parse_alarm(raw: bytes) -> Alarm:
    try:
        alarm = Alarm.model_validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(describe(exc)) from None
    _check_nul(raw, alarm)
    return alarm


def parse_position(raw: bytes) -> Position:
    try:
        return Position.model_validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(describe(exc)) from None


def parse_analytics(raw: bytes) -> AnalyticsResult:
    try:
        result = _ANALYTICS.validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(describe(exc)) from None
    _check_nul(raw, result)
    return result


def parse_state(raw: bytes) -> Literal["online", "offline"]:
    """`online` / `offline` as plain text, a JSON string, or {"state": ...}."""
    text = raw.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        import json

        try:
            text = str(json.loads(text).get("state", ""))
        except (ValueError, AttributeError):
            raise PayloadError("not valid JSON; send online or offline") from None
    text = text.strip().strip('"').strip().lower()
    if text not in ("online", "offline"):
        raise PayloadError(f"{text[:32]!r} is not online or offline")
    return text  # type: ignore[return-value]


def check_snapshot(raw: bytes) -> bytes:
    """The JPEG bytes of a snapshot; PayloadError when it does not start with the JPEG magic."""
    if not raw.startswith(JPEG_MAGIC):
        raise PayloadError("not a JPEG (payload does not start with FF D8 FF)")
    return raw
