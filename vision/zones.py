"""Zones and tripwires in image coordinates: intrusion, directional line crossing, dwell.

Motion boxes are tracked frame to frame by a greedy nearest-neighbour tracker on the box's
ground point (bottom centre, where a person or vehicle stands). Events fire once per track:
on entering a zone, on crossing a line in a watched direction, and once when a stay in a
zone reaches the zone's dwell time. Geometry is normalised (see vision.geometry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from vision.events import Box, DwellEvent, TripwireEvent, ZoneEvent
from vision.geometry import Point, Polygon, segments_cross, side_of


class Zone(BaseModel):
    """A watched polygon; `dwell_s` set means "alarm when something stays this long"."""

    id: str = Field(min_length=1, max_length=64)
    polygon: Polygon
    intrusion: bool = True
    dwell_s: float | None = Field(default=None, gt=0)


class Tripwire(BaseModel):
    """A watched line a->b; direction is relative to walking from a to b on screen."""

    id: str = Field(min_length=1, max_length=64)
    a: Point
    b: Point
    direction: Literal["left_to_right", "right_to_left", "both"] = "both"

    @model_validator(mode="after")
    def _not_degenerate(self) -> Tripwire:
        if self.a == self.b:
            raise ValueError(f"tripwire {self.id!r}: a and b are the same point")
        return self


class TrackerConfig(BaseModel):
    """Association gate (share of frame diagonal per frame), patience and confirmation."""

    max_step: float = Field(default=0.12, gt=0)
    max_missed: int = Field(default=3, ge=0)
    min_hits: int = Field(default=2, ge=1)
    max_coast: int = Field(default=15, ge=0, description="frames a track may ride a merged box")


@dataclass
class Track:
    """One tracked object (positions are normalised ground points)."""

    id: int
    pos: Point
    box: Box
    prev: Point | None = None
    vel: Point = (0.0, 0.0)
    hits: int = 1
    missed: int = 0
    coasted: int = 0
    inside: dict[str, float] = field(default_factory=dict)  # zone -> entered at ts
    dwelt: set[str] = field(default_factory=set)

    def predicted(self) -> Point:
        return (self.pos[0] + self.vel[0], self.pos[1] + self.vel[1])

    def move_to(self, p: Point, box: Box) -> None:
        vx, vy = p[0] - self.pos[0], p[1] - self.pos[1]
        k = 0.5 if self.hits > 1 else 1.0
        self.vel = (self.vel[0] + k * (vx - self.vel[0]), self.vel[1] + k * (vy - self.vel[1]))
        self.prev, self.pos, self.box = self.pos, p, box


class Tracker:
    """Nearest-neighbour association of ground points to constant-velocity predictions.

    When two objects meet their boxes merge into one; the track left without a box of its own
    keeps moving at its velocity while its prediction lies inside some box of the frame, so a
    crossing made while merged is still seen.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.cfg = config or TrackerConfig()
        self.tracks: dict[int, Track] = {}
        self._next = 1

    def update(self, boxes: list[Box], full_w: int, full_h: int) -> list[Track]:
        """Associate this frame's boxes; returns the tracks seen in this frame."""
        pts = [((x + w / 2) / full_w, (y + h) / full_h) for x, y, w, h in boxes]
        gate2 = self.cfg.max_step**2
        pairs = []
        for tid, t in self.tracks.items():
            px, py = t.predicted()
            for j, p in enumerate(pts):
                d2 = (px - p[0]) ** 2 + (py - p[1]) ** 2
                if d2 <= gate2 * (1 + t.missed) ** 2:
                    pairs.append((d2, tid, j))
        pairs.sort()
        used_t: set[int] = set()
        used_b: set[int] = set()
        seen: list[Track] = []
        for _, tid, j in pairs:
            if tid in used_t or j in used_b:
                continue
            t = self.tracks[tid]
            t.move_to(pts[j], boxes[j])
            t.hits += 1
            t.missed = t.coasted = 0
            used_t.add(tid)
            used_b.add(j)
            seen.append(t)
        for tid in list(self.tracks):
            if tid in used_t:
                continue
            t = self.tracks[tid]
            px, py = t.predicted()
            host = next(
                (
                    b
                    for b in boxes
                    if b[0] <= px * full_w <= b[0] + b[2] and b[1] <= py * full_h <= b[1] + b[3] + 2
                ),
                None,
            )
            if host is not None and t.hits >= self.cfg.min_hits and t.coasted < self.cfg.max_coast:
                # Merged with another object: coast inside the shared box.
                t.prev, t.pos, t.box = t.pos, (px, py), host
                t.coasted += 1
                seen.append(t)
                continue
            t.missed += 1
            t.prev = None
            if t.missed > self.cfg.max_missed:
                del self.tracks[tid]
        for j, p in enumerate(pts):
            if j not in used_b:
                t = Track(id=self._next, pos=p, box=boxes[j])
                self._next += 1
                self.tracks[t.id] = t
                seen.append(t)
        return seen


class ZoneEngine:
    """Turns motion boxes into zone, tripwire and dwell events for one camera."""

    def __init__(
        self,
        zones: list[Zone] | None = None,
        tripwires: list[Tripwire] | None = None,
        tracker: TrackerConfig | None = None,
    ) -> None:
        self.zones = zones or []
        self.tripwires = tripwires or []
        self.tracker = Tracker(tracker)

    @property
    def active(self) -> bool:
        """False when there is nothing to watch (the tracker is then skipped)."""
        return bool(self.zones or self.tripwires)

    def update(
        self, ts: float, boxes: list[Box], full_w: int, full_h: int
    ) -> list[ZoneEvent | TripwireEvent | DwellEvent]:
        """Events caused by this frame's boxes."""
        if not self.active:
            return []
        events: list[ZoneEvent | TripwireEvent | DwellEvent] = []
        confirmed = self.tracker.cfg.min_hits
        for t in self.tracker.update(boxes, full_w, full_h):
            ok = t.hits >= confirmed
            for z in self.zones:
                now_in = z.polygon.contains(*t.pos)
                was_in = z.id in t.inside
                if now_in and not was_in:
                    t.inside[z.id] = ts
                    if z.intrusion and ok:
                        events.append(ZoneEvent(ts=ts, zone=z.id, track=t.id, box=t.box))
                    t.dwelt.discard(z.id)
                elif not now_in and was_in:
                    del t.inside[z.id]
                elif now_in and z.intrusion and ok and t.hits == confirmed:
                    # Appeared inside and just got confirmed: that is an intrusion too.
                    events.append(ZoneEvent(ts=ts, zone=z.id, track=t.id, box=t.box))
                if now_in and z.dwell_s and z.id not in t.dwelt and ok:
                    stay = ts - t.inside[z.id]
                    if stay >= z.dwell_s:
                        t.dwelt.add(z.id)
                        events.append(
                            DwellEvent(
                                ts=ts, zone=z.id, track=t.id, seconds=round(stay, 3), box=t.box
                            )
                        )
            if t.prev is None:
                continue
            for line in self.tripwires:
                if not segments_cross(line.a, line.b, t.prev, t.pos):
                    continue
                went = "left_to_right" if side_of(line.a, line.b, t.prev) < 0 else "right_to_left"
                if line.direction in ("both", went):
                    events.append(
                        TripwireEvent(ts=ts, line=line.id, direction=went, track=t.id, box=t.box)
                    )
        return events
