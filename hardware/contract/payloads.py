"""Payload schemas of the v1 contract (pydantic v2, strict), with readable validation errors."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
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
MAX_DEPTH = 32  # objects/arrays nested deeper than this are refused before any parse
INT_RANGE = (-(2**63), 2**63 - 1)  # integers must fit in 64 bits (jsonb, JavaScript readers)
STATE_MAX_BYTES = 256
# check_json sends a payload the strict way when it holds NaN/Infinity literals (the fast parser
# accepts them; they were stored as null before) or U+0000 (jsonb cannot hold it): plain `in`
# tests: a regex over every payload cost a third to a half of the parse it guards.
_DIGITS = re.compile(rb"\d{19,}")


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
        if lon is not None and lat is not None and crs != "wgs84":
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
    codes, {code, score, threshold} objects (hardware/contract/analytics.py) or a {code: score} map."""

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
            if "unicode" in msg:
                msg = f"text is not valid UTF-8 ({msg})"
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
    check_json(raw)
    try:
        return Heartbeat.model_validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(describe(exc)) from None


def check_json(raw: bytes) -> None:
    """The bounded gate every JSON payload passes before it is parsed for real: nesting at most
    MAX_DEPTH, and no NaN/Infinity literal or U+0000 anywhere. PayloadError (naming the
    problem) otherwise; the stored free-form parts get the number checks in _check_free.

    Cheap for ordinary payloads: a payload with at most MAX_DEPTH brackets cannot nest deeper,
    and one without a suspect literal needs no more, so only the others are parsed strictly
    (orjson, in C, which itself refuses NaN, invalid UTF-8 and depth over 1024) and walked
    without recursion (finite numbers, 64-bit integers, no NUL)."""
    if (
        raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH
        and b"NaN" not in raw
        and b"Infinity" not in raw
        and b"\\u0000" not in raw
    ):
        return
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        msg = str(exc)
        if "depth limit" in msg:
            msg = f"nested deeper than {MAX_DEPTH} levels"
        elif "infinity" in msg:
            msg = f"number out of range ({msg})"
        elif b"NaN" in raw or b"Infinity" in raw:
            msg = "NaN and Infinity are not JSON numbers; send null or a finite number"
        raise PayloadError(f"not valid JSON: {msg}") from None
    problem = _walk(value)
    if problem is None and _DIGITS.search(raw):
        # orjson reads integers beyond 64 bits as floats; the standard parser keeps them exact
        # (safe here: the nesting is already known to be shallow).
        try:
            problem = _walk(json.loads(raw))
        except ValueError:  # more digits than Python converts
            problem = "payload: integer out of range (more than 64 bits)"
    if problem:
        raise PayloadError(problem)


def _walk(value: Any) -> str | None:
    """The first thing in a parsed JSON value that may not be stored, or None (iterative)."""
    stack: list[tuple[Any, str, int]] = [(value, "payload", 0)]
    while stack:
        v, path, depth = stack.pop()
        path = path if len(path) <= 80 else path[:77] + "..."
        if isinstance(v, dict):
            if depth >= MAX_DEPTH:
                return f"{path}: nested deeper than {MAX_DEPTH} levels"
            for k, item in v.items():
                if "\x00" in k:
                    return f"{path}: text contains \\u0000 (NUL), which cannot be stored; remove it"
                stack.append((item, k if path == "payload" else f"{path}.{k}", depth + 1))
        elif isinstance(v, list):
            if depth >= MAX_DEPTH:
                return f"{path}: nested deeper than {MAX_DEPTH} levels"
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(v))
        elif isinstance(v, str):
            if "\x00" in v:
                return f"{path}: text contains \\u0000 (NUL), which cannot be stored; remove it"
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int):
            if not INT_RANGE[0] <= v <= INT_RANGE[1]:
                return f"{path}: integer out of range (more than 64 bits)"
        elif isinstance(v, float) and not math.isfinite(v):
            return f"{path}: number out of range (not finite)"
    return None


def parse_alarm(raw: bytes) -> Alarm:
    check_json(raw)
    try:
        alarm = Alarm.model_validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(describe(exc)) from None
    if alarm.detail:
        _check_free({"detail": alarm.detail})
    return alarm


def _check_free(value: Any) -> None:
    """The free-form parts that are stored as they came (alarm detail, analytics extras): every
    number finite, every integer within 64 bits (the fast parser reads 1e400 as infinity and
    keeps huge integers exact; the gate only sends NaN/Infinity literals the strict way)."""
    problem = _walk(value)
    if problem:
        raise PayloadError(problem.removeprefix("payload."))


def parse_position(raw: bytes) -> Position:
    check_json(raw)
    try:
        return Position.model_validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(describe(exc)) from None


def parse_analytics(raw: bytes) -> AnalyticsResult:
    check_json(raw)
    try:
        result = _ANALYTICS.validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(describe(exc)) from None
    _check_free(result.model_dump(mode="python"))
    return result


def parse_state(raw: bytes) -> Literal["online", "offline"]:
    """`online` / `offline` as plain text, a JSON string, or {"state": ...} (bounded: at most
    STATE_MAX_BYTES, UTF-8, and JSON through check_json)."""
    if len(raw) > STATE_MAX_BYTES:
        raise PayloadError(f"{len(raw)} bytes is too long for a state; send online or offline")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PayloadError("not UTF-8 text; send online or offline") from None
    if text.startswith("{"):
        check_json(raw)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise PayloadError("not valid JSON; send online or offline") from None
        state = value.get("state") if isinstance(value, dict) else None
        if not isinstance(state, str):
            raise PayloadError(
                'state: must be the text online or offline, e.g. {"state": "online"}'
            )
        text = state
    text = text.strip().strip('"').strip().lower()
    if text not in ("online", "offline"):
        raise PayloadError(f"{text[:32]!r} is not online or offline")
    return text  # type: ignore[return-value]


def check_snapshot(raw: bytes) -> bytes:
    """The JPEG bytes of a snapshot; PayloadError when it does not start with the JPEG magic."""
    if not raw.startswith(JPEG_MAGIC):
        raise PayloadError("not a JPEG (payload does not start with FF D8 FF)")
    return raw
