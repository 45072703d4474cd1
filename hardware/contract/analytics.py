"""The analytics payloads the vision worker publishes on gw/v1/{id}/analytics (docs/mqtt-analytics.md)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Box = tuple[int, int, int, int]


def _msg_id() -> str:
    return uuid.uuid4().hex


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ts: float = Field(description="frame time, UTC epoch seconds")
    msg_id: str = Field(default_factory=_msg_id, description="unique; redelivery is harmless")


class FaultScore(BaseModel):
    """One active quality fault: its code, how strong it is, and the threshold it crossed."""

    model_config = ConfigDict(extra="forbid")
    code: str
    score: float
    threshold: float
    area: list[float] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="affected part of the picture, normalised [x, y, w, h]; none: all of it",
    )


class QualityEvent(_Event):
    """Video-quality diagnosis: intact, or the list of active faults (DESIGN §5.5)."""

    type: Literal["quality"] = "quality"
    intact: bool
    faults: list[FaultScore] = Field(default_factory=list)
    thumbnail_jpeg_b64: str | None = None
    reason: str | None = Field(
        default=None,
        max_length=300,
        description="why there is no picture, with signal_loss (e.g. 'decoder died: SIGABRT')",
    )


class MotionEvent(_Event):
    """Motion: share of the watched area moving, boxes (x, y, w, h) in frame pixels."""

    type: Literal["motion"] = "motion"
    share: float = Field(ge=0, le=1)
    boxes: list[Box] = Field(default_factory=list)
    frame_w: int
    frame_h: int


class ZoneEvent(_Event):
    """An object entered a watched polygon (intrusion)."""

    type: Literal["zone"] = "zone"
    zone: str
    track: int
    box: Box


class TripwireEvent(_Event):
    """An object crossed a line in a watched direction."""

    type: Literal["tripwire"] = "tripwire"
    line: str
    direction: Literal["left_to_right", "right_to_left"]
    track: int
    box: Box


class DwellEvent(_Event):
    """An object stayed inside a zone for at least the zone's dwell time."""

    type: Literal["dwell"] = "dwell"
    zone: str
    track: int
    seconds: float = Field(ge=0)
    box: Box


AnalyticsEvent = Annotated[
    QualityEvent | MotionEvent | ZoneEvent | TripwireEvent | DwellEvent,
    Field(discriminator="type"),
]
ANALYTICS_ADAPTER: TypeAdapter[AnalyticsEvent] = TypeAdapter(AnalyticsEvent)


def to_payload(event: BaseModel) -> bytes:
    """The JSON bytes published for an event."""
    return event.model_dump_json().encode()


def from_payload(raw: bytes) -> QualityEvent | MotionEvent | ZoneEvent | TripwireEvent | DwellEvent:
    """Parse and validate a payload (raises pydantic.ValidationError with the reasons)."""
    return ANALYTICS_ADAPTER.validate_json(raw)
