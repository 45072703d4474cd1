"""Zones and tripwires in image coordinates: intrusion, directional line crossing, dwell.

Motion boxes are tracked frame to frame by a one-to-one assignment (least total cost:
distance from the predicted ground point, the box's bottom centre where a person or vehicle
stands, box overlap and colours). Events fire once per track:
on entering a zone, on crossing a line in a watched direction, and once when a stay in a
zone reaches the zone's dwell time. Geometry is normalised (see vision.geometry).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import cv2
import numpy as np
from pydantic import BaseModel, Field, model_validator

from hardware.contract.analytics import Box, DwellEvent, TripwireEvent, ZoneEvent
from vision.geometry import Point, Polygon, rasterise, segments_cross, side_of
from vision.motion import RATE_STEP_S, kept


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
    """Association gate, patience, confirmation and how long still objects are held.

    Every time is in seconds and every speed per second, never in frames, so a camera
    analysed at 10 fps tracks as one at 5 fps does (the values were tuned at 5 fps: 0.6/s
    is the 0.12 of a frame's step there)."""

    max_speed: float = Field(
        default=0.6, gt=0, description="smallest gate, share of the frame per second"
    )
    size_speed: float = Field(
        default=7.5,
        gt=0,
        description="gate also grows to this many box sizes per second: a car moves about "
        "its own length between frames at 5 fps, which no fixed step allows",
    )
    lost_s: float = Field(
        default=0.6, ge=0, description="seconds a track without a box (not held) is kept"
    )
    revive_s: float = Field(
        default=2.0,
        ge=0,
        description="seconds a lost confirmed track may be taken up again where it was lost "
        "(in time, not frames: a standing man lost in a group is the same at any rate)",
    )
    confirm_s: float = Field(
        default=0.2,
        ge=0,
        description="a track is confirmed (may fire events) once it has had boxes this long "
        "apart, and at least twice: a flicker is as short at any rate",
    )
    coast_s: float = Field(
        default=3.0, ge=0, description="seconds a track may ride merged boxes (until its own)"
    )
    still_diff: float = Field(
        default=8.0, gt=0, description="mean grey difference under which a lost object is 'still'"
    )
    still_s: float = Field(
        default=600.0, ge=0, description="seconds a still object is held (until it moves)"
    )
    recross_s: float = Field(
        default=2.0,
        ge=0,
        description="a crossing back over the same line this many seconds after is jitter",
    )
    turn_depth: float = Field(
        default=0.3,
        ge=0,
        description="... unless the object had gone this many of its heights past the line "
        "(about a person's width): a turn-back, not jitter",
    )
    min_box: float = Field(
        default=0.0008, ge=0, description="smallest box (share of the frame) that fires events"
    )
    same_crossing_s: float = Field(
        default=0.5,
        ge=0,
        description="a second track crossing the same line the same way this soon, within a "
        "box size of the first, is the same object split into two tracks (a crowd's flicker)",
    )
    inherit_side: bool = Field(
        default=True,
        description="a track first seen inside the last box of another object starts on "
        "that object's side of each line (it was hidden in it): a crossing made while two "
        "objects were one blob, or as they part, is not lost",
    )
    inherit_riders: bool = Field(
        default=True,
        description="... also from an object riding a shared box (its blob merged with "
        "others'): one coming out of that box may be it, as tall as its own last box",
    )
    split_blobs: bool = Field(
        default=True, description="cut blobs of objects side by side (see split_merged)"
    )
    fragment_height: float = Field(
        default=0.6,
        ge=0,
        description="a box this much shorter than the typical object at its row, inside a "
        "confirmed track's box, is a piece of that object (a person standing still breaks "
        "up); 0 = off",
    )
    leave_s: float = Field(
        default=1.0,
        ge=0,
        description="seconds outside a zone before a stay ends (an object on its edge jitters)",
    )
    optimal: bool = Field(
        default=True,
        description="least total cost (Hungarian); False: the cheapest pair first (greedy)",
    )
    miss_cost: float = Field(
        default=1.5,
        gt=0,
        description="cost of leaving a track without a box: no pair dearer than this is made "
        "only so that another track gets a box",
    )
    iou_weight: float = Field(
        default=1.0, ge=0, description="weight of 1 - IoU with the predicted box in the cost"
    )
    colour_weight: float = Field(
        default=2.0,
        ge=0,
        description="weight of the colour difference (0..1) in the association cost; 0 = off",
    )
    surge: float = Field(
        default=0.8,
        ge=0,
        description="a track whose speed rose by this many of its heights per second at once, "
        "on a box far larger than its last (it was given a blob merged with another object's, "
        "and read the jump of that blob's foot as its own speed), crosses no line while it "
        "rides a shared box on that speed; 0 = off",
    )
    ground_plane: bool = Field(
        default=True,
        description="where no boxes were learned at a row, expect an object's height there "
        "from a line fitted to every learned (ground row, height) (a fixed camera over flat "
        "ground: heights grow linearly with the row), to cut blobs of objects side by side "
        "(see ZoneEngine._expected_height)",
    )
    cut_apart: bool = Field(
        default=True,
        description="two tracks on parts of one blob cut into objects side by side in this "
        "frame are two objects: crossing a line together is not one object split in two "
        "(see same_crossing_s)",
    )
    shape_samples: int = Field(
        default=30,
        ge=1,
        description="boxes of confirmed single tracks seen before a blob too wide for its "
        "height is cut into several objects (the typical shape is learned from them)",
    )


@dataclass
class Track:
    """One tracked object (positions are normalised ground points)."""

    id: int
    pos: Point
    box: Box
    seen: float = 0.0  # ts of its last position (a box, or held coasting or still)
    born: float = 0.0  # ts it was first seen
    coast_from: float = 0.0  # ts it began to ride merged boxes (since its last own box)
    still_from: float = 0.0  # ts it began to be held still (since its last own box)
    step_s: float = 0.0  # seconds from prev to pos
    confirmed: bool = False  # had boxes confirm_s apart (see TrackerConfig.confirm_s)
    prev: Point | None = None
    first: Point | None = None  # where it was first seen
    own: Box | None = None  # its last box of its own (not a shared box it rode)
    surged: bool = False  # its speed leapt on a merged box (see TrackerConfig.surge)
    whole: bool = False  # was ever as tall as a whole object at its row
    vel: Point = (0.0, 0.0)  # share of the frame per second
    hits: int = 1
    missed: int = 0
    coasted: int = 0
    inside: dict[str, float] = field(default_factory=dict)  # zone -> entered at ts
    outside: dict[str, float] = field(default_factory=dict)  # zone -> stepped out at ts
    dwelt: set[str] = field(default_factory=set)
    announced: set[str] = field(default_factory=set)  # zones whose entry this stay was sent
    still: int = 0  # frames held in place without a motion box (standing still)
    patch: np.ndarray | None = None  # the analysis image under its box when last seen moving
    crossed: dict[str, tuple[float, str]] = field(default_factory=dict)  # line -> (ts, dir)
    sides: dict[str, float] = field(default_factory=dict)  # line -> its side, off the line
    beyond: dict[str, float] = field(default_factory=dict)  # line -> depth past it (heights)
    hist: np.ndarray | None = None  # its colours (hue-saturation histogram), see _hist

    def elapsed(self, ts: float) -> float:
        """Seconds since its last position (at least MIN_DT: a repeated ts is one step)."""
        return max(MIN_DT, ts - self.seen)

    def predicted(self, dt: float) -> Point:
        """Where it would be dt seconds on at its velocity."""
        return (self.pos[0] + self.vel[0] * dt, self.pos[1] + self.vel[1] * dt)

    def move_to(self, ts: float, p: Point, box: Box, dt: float) -> None:
        """Placed on its box at ts, `dt` seconds after the previous frame (a move over missed
        frames counts as one step, as the tracker was tuned)."""
        vx, vy = (p[0] - self.pos[0]) / dt, (p[1] - self.pos[1]) / dt
        # Smoothing by time: half the old velocity kept per RATE_STEP_S, at any rate.
        k = 1.0 - kept(0.5, dt) if self.hits > 1 else 1.0
        self.vel = (self.vel[0] + k * (vx - self.vel[0]), self.vel[1] + k * (vy - self.vel[1]))
        self.prev, self.pos, self.box, self.own = self.pos, p, box, box
        self.step_s, self.seen = self.elapsed(ts), ts

    def hold(self, ts: float, p: Point, box: Box) -> None:
        """A position without a box of its own (riding a merged box, or standing still)."""
        self.step_s = self.elapsed(ts)
        self.prev, self.pos, self.box, self.seen = self.pos, p, box, ts


MIN_DT = 0.02  # shortest step between frames counted (the config allows 30 fps)
GROWN_AREA = 1.5  # a box this many times a track's last one has grown round another object


class Tracker:
    """Boxes assigned one to one to tracks' constant-velocity predictions (see `_costs`).

    When two objects meet their boxes merge into one; the track left without a box of its own
    keeps moving at its velocity while its prediction lies inside some box of the frame, so a
    crossing made while merged is still seen.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.cfg = config or TrackerConfig()
        self.tracks: dict[int, Track] = {}
        self._lost: dict[int, tuple[float, Track]] = {}  # id -> (ts lost, track)
        self._next = 1
        self.frame = 0
        self.ts: float | None = None  # of the last frame
        self.dt = RATE_STEP_S  # seconds between the last two frames

    def update(
        self,
        ts: float,
        boxes: list[Box],
        full_w: int,
        full_h: int,
        image: np.ndarray | None = None,
        colour: np.ndarray | None = None,
    ) -> list[Track]:
        """Associate the boxes of the frame at `ts` (seconds); returns the tracks seen in it.

        `image` (the small analysis luma, any size) lets an object that stopped moving stay
        tracked: a confirmed track without a box whose picture is unchanged is standing still.
        `colour` (a BGR picture of the frame, any size) adds each object's colours to the
        association (see `_costs`).
        """
        self.frame += 1
        last = self.ts
        if self.ts is not None:
            self.dt = max(MIN_DT, ts - self.ts)
        self.ts = ts
        cfg = self.cfg
        # Each object seen in the last frame (on a box of its own, or riding a shared one),
        # as it was then, for an object that comes out of that box now (see `_parent`).
        was = [
            Was(t.pos, t.box, dict(t.sides), dict(t.crossed), (t.own or t.box)[3])
            for t in self.tracks.values()
            if last is not None and t.seen >= last - 1e-6 and (t.coasted == 0 or cfg.inherit_riders)
        ]
        pts = [((x + w / 2) / full_w, (y + h) / full_h) for x, y, w, h in boxes]
        hists = [_hist(colour, b, full_w, full_h) for b in boxes]
        ids = list(self.tracks)
        cost = self._costs(ts, ids, boxes, pts, hists, full_w, full_h)
        # One "no box" column per track at the miss cost: a pair dearer than that is not
        # made just so that more tracks get a box.
        alone = np.full((len(ids), len(ids)), NO_PAIR)
        np.fill_diagonal(alone, cfg.miss_cost)
        used_t: set[int] = set()
        used_b: set[int] = set()
        seen: list[Track] = []
        pairs = assign(np.hstack([cost, alone])) if cfg.optimal else assign_greedy(cost)
        for i, j in pairs:
            if j >= len(boxes) or cost[i, j] >= NO_PAIR:
                continue
            t = self.tracks[ids[i]]
            t.hist = _blend(t.hist, hists[j], t.elapsed(ts))
            vel, box = t.vel, t.box
            t.move_to(ts, pts[j], boxes[j], self.dt)
            t.surged = t.hits > 1 and self._surged(vel, box, t, full_w, full_h)
            t.hits += 1
            t.missed = t.coasted = t.still = 0
            t.confirmed = t.confirmed or (t.hits >= 2 and ts - t.born >= cfg.confirm_s - 1e-6)
            t.patch = _patch(image, boxes[j], full_w, full_h)
            used_t.add(t.id)
            used_b.add(j)
            seen.append(t)
        for tid in list(self.tracks):
            if tid in used_t:
                continue
            t = self.tracks[tid]
            px, py = t.predicted(self.dt)
            host = next(
                (
                    b
                    for b in boxes
                    if b[0] <= px * full_w <= b[0] + b[2] and b[1] <= py * full_h <= b[1] + b[3] + 2
                ),
                None,
            )
            if t.coasted == 0:
                t.coast_from = ts
            if t.still == 0:
                t.still_from = ts
            eps = 1e-6  # ts are sums of frame periods
            if host is not None and t.confirmed and ts - t.coast_from < cfg.coast_s - eps:
                # Merged with another object: coast inside the shared box.
                t.hold(ts, (px, py), host)
                t.coasted += 1
                seen.append(t)
                continue
            if (
                t.confirmed
                and ts - t.still_from < cfg.still_s - eps
                and self._unchanged(t, image, full_w, full_h)
            ):
                # No motion box, but the picture where it stood has not changed: it stopped
                # (a person waiting), and the motion background is absorbing it. Hold it.
                t.hold(ts, t.pos, t.box)
                t.prev, t.vel = None, (0.0, 0.0)
                t.still += 1
                t.missed = 0
                seen.append(t)
                continue
            t.missed += 1
            t.prev = None
            if ts - t.seen > cfg.lost_s + 1e-6:
                del self.tracks[tid]
                if t.confirmed:
                    self._lost[tid] = (ts, t)
        keep = cfg.revive_s + 1e-6
        for tid in [k for k, (lost, _) in self._lost.items() if ts - lost > keep]:
            del self._lost[tid]
        for j, p in enumerate(pts):
            if j not in used_b:
                t = self._revive(ts, p, boxes[j], full_w, full_h) or Track(
                    id=self._next, pos=p, box=boxes[j], own=boxes[j], first=p, seen=ts, born=ts
                )
                if t.id == self._next:
                    self._next += 1
                    parent = _parent(boxes[j], was) if cfg.inherit_side else None
                    if parent is not None:
                        self._inherit(t, parent, ts)
                t.patch = _patch(image, boxes[j], full_w, full_h)
                t.hist = _blend(t.hist, hists[j], RATE_STEP_S)
                self.tracks[t.id] = t
                seen.append(t)
        return seen

    def _inherit(self, t: Track, parent: Was, ts: float) -> None:
        """A new track `t` that came out of another object's last box (two people walking as
        one blob part, or a blob is cut in two): it stood in that box a frame ago, so it starts
        from that box's ground point and sides of the lines (a line it crossed since is
        crossed), and with the box's crossings of moments ago (`same_crossing_s`): going back
        over such a line at once is the jitter of a blob's ground point, not news."""
        pos, _, sides, crossed, _ = parent
        t.prev, t.sides, t.step_s = pos, dict(sides), self.dt
        keep = self.cfg.same_crossing_s + 1e-6
        t.crossed = {k: v for k, v in crossed.items() if ts - v[0] <= keep}

    def _costs(
        self,
        ts: float,
        ids: list[int],
        boxes: list[Box],
        pts: list[Point],
        hists: list[np.ndarray | None],
        full_w: int,
        full_h: int,
    ) -> np.ndarray:
        """Cost of giving box j to track ids[i]; NO_PAIR where the box is out of its gate.

        The sum of the distance from the track's predicted ground point (share of its gate,
        0..1), one minus the overlap (IoU) of its box moved to the prediction with the box, and
        the colour difference (Bhattacharyya distance of hue-saturation histograms, 0..1) when
        both are known. A standing person's track keeps its own box when a walker passes or
        leaves: the walker's box lies as near, but overlaps less and is dressed otherwise.
        """
        cfg = self.cfg
        cost = np.full((len(ids), len(boxes)), NO_PAIR)
        sizes = [max(w / full_w, h / full_h) for x, y, w, h in boxes]
        for i, tid in enumerate(ids):
            t = self.tracks[tid]
            px, py = t.predicted(self.dt)
            tsize = max(t.box[2] / full_w, t.box[3] / full_h)
            moved = (
                t.box[0] + (px - t.pos[0]) * full_w,
                t.box[1] + (py - t.pos[1]) * full_h,
                t.box[2],
                t.box[3],
            )
            for j, p in enumerate(pts):
                # Gate: the larger of a fixed speed and a few box sizes per second, over one
                # frame's time, widened by a frame's more for each frame missed.
                gate = self.gate(max(tsize, sizes[j]), self.dt * (1 + t.missed))
                d2 = (px - p[0]) ** 2 + (py - p[1]) ** 2
                if d2 > gate * gate and _overlap(t.box, boxes[j]) < 0.3:
                    continue
                c = min(1.0, d2 / (gate * gate)) + cfg.iou_weight * (1 - _iou(moved, boxes[j]))
                hj = hists[j]
                if cfg.colour_weight > 0 and t.hist is not None and hj is not None:
                    diff = cv2.compareHist(t.hist, hj, cv2.HISTCMP_BHATTACHARYYA)
                    c += cfg.colour_weight * float(diff)
                cost[i, j] = c
        return cost

    def _surged(self, vel: Point, box: Box, t: Track, full_w: int, full_h: int) -> bool:
        """True when t, moved from `box` at `vel` onto a box GROWN_AREA times as large, is now
        faster by `surge` of its heights per second: a blob merged with another object's,
        whose foot jumped to the middle of the pair, not a step of its own."""
        b = t.box
        if self.cfg.surge <= 0 or b[2] * b[3] < GROWN_AREA * box[2] * box[3]:
            return False
        before = float(np.hypot(vel[0] * full_w, vel[1] * full_h))
        after = float(np.hypot(t.vel[0] * full_w, t.vel[1] * full_h))
        return after - before >= self.cfg.surge * max(1, b[3])

    def gate(self, size: float, dt: float) -> float:
        """How far (share of the frame) an object of `size` may move in dt seconds."""
        return max(self.cfg.max_speed, self.cfg.size_speed * size) * dt

    def _revive(self, ts: float, p: Point, box: Box, full_w: int, full_h: int) -> Track | None:
        """A confirmed track lost moments ago where this new box is, or where it would be by
        now at its velocity (a person who stood still behind others, or walked on hidden by
        a pole for a few frames), takes it up again with its zone state: the same object
        enters and dwells once."""
        best, bd = None, 0.0
        for tid, (_, t) in self._lost.items():
            size = max(t.box[2] / full_w, t.box[3] / full_h, box[2] / full_w, box[3] / full_h)
            ahead = t.predicted(ts - t.seen)  # walked on unseen
            d = min(
                float(np.hypot(t.pos[0] - p[0], t.pos[1] - p[1])),
                float(np.hypot(ahead[0] - p[0], ahead[1] - p[1])),
            )
            if (d <= 0.5 * size or _overlap(t.box, box) >= 0.5) and (best is None or d < bd):
                best, bd = tid, d
        if best is None:
            return None
        _, t = self._lost.pop(best)
        t.pos, t.box, t.own, t.prev, t.vel = p, box, box, None, (0.0, 0.0)
        t.seen = ts
        t.missed = t.coasted = t.still = 0
        t.hits += 1
        t.surged = False
        return t

    def _unchanged(self, t: Track, image: np.ndarray | None, full_w: int, full_h: int) -> bool:
        now = _patch(image, t.box, full_w, full_h)
        if now is None or t.patch is None or now.shape != t.patch.shape:
            return False
        return float(cv2.absdiff(now, t.patch).mean()) < self.cfg.still_diff


PARENT_SHARE = 0.6  # share of a new box inside an object's last box: it came out of it


class Was(NamedTuple):
    """An object as it was in the last frame, before this one (see `_parent`)."""

    pos: Point  # ground point
    box: Box  # the box it was on (its own, or a shared one it rode)
    sides: dict  # line -> side
    crossed: dict  # line -> (ts, direction)
    height: int  # height of its own last box


def _parent(box: Box, was: list[Was]) -> Was | None:
    """The object of the last frame whose box, grown by a fifth, held most of `box`: an
    object first seen now that was hidden in that box. Only for a box about as tall as that
    object's own (`SPLIT_MIN_HEIGHT`): a flicker, an arm or a bag coming out of a box is not
    an object that was hidden there. The box may have been shared by several (a blob of
    people one above another is as tall as two: its own height is the rider's)."""
    best, share = None, PARENT_SHARE
    for w in was:
        s = _inside(box, w.box, 0.2)
        if s >= share and box[3] >= SPLIT_MIN_HEIGHT * w.height:
            best, share = w, s
    return best


SPLIT_VALLEY = 0.35  # a column this empty between two full ones separates two objects
SPLIT_MIN_COLS = 2  # each part at least this many columns of the motion mask
SPLIT_MIN_HEIGHT = 0.6  # ... and this share of the other part's height (an arm is not a person)
SPLIT_WIDE = 1.6  # a box this many typical widths (for its height) wide holds several objects
ASPECT_PERCENTILE = 25  # the typical single object: narrower than the blobs of groups
ROW_BAND = 0.06  # boxes standing this near (share of the height) share a typical size
SPLIT_MAX = 3  # ... up to this many; wider shapes are another kind of object (a car sideways)


def split_merged(
    boxes: list[Box],
    mask: np.ndarray | None,
    full_w: int,
    full_h: int,
    aspect: float | None = None,
) -> list[Box]:
    """Boxes with each one holding objects side by side cut into one box per object.

    The motion boxes come from a dilated mask, which joins people walking side by side into
    one blob. Under each box the undilated foreground `mask` (motion resolution) is counted by
    column:

    - a column far emptier than the fullest columns on both of its sides (a gap between two
      bodies) cuts the box, when both parts are of an object's size and about the same height
      (an arm or a bag swinging clear of a body is neither); a car's or a lone person's
      columns have no such gap;
    - with `aspect`, the typical width/height of this camera's single objects, a part
      `SPLIT_WIDE` or more typical widths wide for its own height (two people half hiding one
      another: as tall as one, twice as wide) is cut into that many, at the emptiest columns
      near the even cuts. Shapes over `SPLIT_MAX` widths are left whole.

    Each part's box is the extent of its own foreground.
    """
    if mask is None or not boxes:
        return boxes
    h, w = mask.shape[:2]
    sx, sy = w / full_w, h / full_h
    out: list[Box] = []
    for b in boxes:
        x0, y0 = int(b[0] * sx), int(b[1] * sy)
        x1 = min(w, max(x0 + 1, int(round((b[0] + b[2]) * sx))))
        y1 = min(h, max(y0 + 1, int(round((b[1] + b[3]) * sy))))
        sub = mask[y0:y1, x0:x1] > 0
        parts = []
        for c0, c1 in _split_columns(sub):
            parts += [(c0 + d0, c0 + d1) for d0, d1 in _split_wide(sub[:, c0:c1], aspect, sx, sy)]
        if len(parts) < 2:
            out.append(b)
            continue
        for c0, c1 in parts:
            rows = np.flatnonzero(sub[:, c0:c1].any(axis=1))
            cols = np.flatnonzero(sub[:, c0:c1].any(axis=0))
            if not rows.size:
                continue
            px0, px1 = x0 + c0 + int(cols[0]), x0 + c0 + int(cols[-1]) + 1
            py0, py1 = y0 + int(rows[0]), y0 + int(rows[-1]) + 1
            out.append(
                (
                    int(px0 / sx),
                    int(py0 / sy),
                    int(round((px1 - px0) / sx)),
                    int(round((py1 - py0) / sy)),
                )
            )
    return out


def _split_columns(sub: np.ndarray, depth: int = 0) -> list[tuple[int, int]]:
    """Column ranges [c0, c1) of the objects side by side, with gaps, in a foreground patch."""
    n = sub.shape[1]
    whole = [(0, n)]
    if n < 2 * SPLIT_MIN_COLS + 1 or depth > 3:
        return whole
    cols = sub.sum(axis=0).astype(np.float64)
    best, cut = 1.0, -1
    for c in range(SPLIT_MIN_COLS, n - SPLIT_MIN_COLS):
        left, right = cols[:c].max(), cols[c + 1 :].max()
        ratio = cols[c] / max(1.0, min(left, right))
        if ratio < best:
            best, cut = ratio, c
    if cut < 0 or best > SPLIT_VALLEY:
        return whole
    a, b = sub[:, :cut], sub[:, cut + 1 :]
    ha, hb = _height(a), _height(b)
    if min(ha, hb) < SPLIT_MIN_HEIGHT * max(ha, hb):
        return whole
    return _split_columns(a, depth + 1) + [
        (cut + 1 + c0, cut + 1 + c1) for c0, c1 in _split_columns(b, depth + 1)
    ]


def _split_wide(
    sub: np.ndarray, aspect: float | None, sx: float, sy: float
) -> list[tuple[int, int]]:
    """Column ranges of the objects overlapping side by side in a part too wide for one."""
    n = sub.shape[1]
    whole = [(0, n)]
    if aspect is None or n < 2 * SPLIT_MIN_COLS:
        return whole
    rows = np.flatnonzero(sub.any(axis=1))
    cols = np.flatnonzero(sub.any(axis=0))
    if not rows.size:
        return whole
    width = (cols[-1] - cols[0] + 1) / sx  # in full-resolution pixels, as aspects are
    height = (rows[-1] - rows[0] + 1) / sy
    many = width / max(1e-6, aspect * height)
    k = int(round(many))
    if many < SPLIT_WIDE or k > SPLIT_MAX:
        return whole
    k = max(2, k)
    counts = sub.sum(axis=0)
    start, span = int(cols[0]), int(cols[-1] - cols[0] + 1)
    cuts = [0]
    for i in range(1, k):
        mid = start + span * i / k
        lo = max(cuts[-1] + SPLIT_MIN_COLS, int(mid - span / (5 * k)))
        hi = min(n - SPLIT_MIN_COLS, int(mid + span / (5 * k)) + 1)
        if lo >= hi:
            return whole
        near = np.abs(np.arange(lo, hi) - mid) * 1e-3  # ties: the column nearest the even cut
        cuts.append(lo + int(np.argmin(counts[lo:hi] + near)))
    cuts.append(n)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _height(part: np.ndarray) -> int:
    rows = np.flatnonzero(part.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


def _inside(a: Box, b: Box, grow: float = 0.0) -> float:
    """Share of a's area inside b grown by `grow` of its size on each side (0..1)."""
    gx, gy = b[2] * grow, b[3] * grow
    x0, y0 = max(a[0], b[0] - gx), max(a[1], b[1] - gy)
    x1, y1 = min(a[0] + a[2], b[0] + b[2] + gx), min(a[1] + a[3], b[1] + b[3] + gy)
    return max(0.0, x1 - x0) * max(0.0, y1 - y0) / max(1, a[2] * a[3])


def _beside(a: Box, b: Box) -> bool:
    """Two boxes side by side: rows overlapping by half the shorter, a gap under a quarter of
    the taller's height."""
    rows = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    gap = max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2])
    return rows >= 0.5 * min(a[3], b[3]) and gap <= 0.25 * max(a[3], b[3])


def _intersection(a: tuple[float, float, float, float], b: Box) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return max(0, x1 - x0) * max(0, y1 - y0)


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box (0..1)."""
    return _intersection(a, b) / max(1, min(a[2] * a[3], b[2] * b[3]))


def _iou(a: tuple[float, float, float, float], b: Box) -> float:
    """Intersection over union (0..1); `a` may lie between pixels (a predicted box)."""
    inter = _intersection(a, b)
    return inter / max(1, a[2] * a[3] + b[2] * b[3] - inter)


HIST_BINS = (12, 4)  # hue x saturation: coarse, a box at analysis size holds few pixels
HIST_KEEP = 0.7  # a track's colours: this much of the old per RATE_STEP_S, the rest new


def _hist(colour: np.ndarray | None, box: Box, full_w: int, full_h: int) -> np.ndarray | None:
    """Normalised hue-saturation histogram of a BGR picture under a full-resolution box."""
    if colour is None or colour.ndim != 3:
        return None
    p = _patch(colour, box, full_w, full_h)
    if p is None or p.shape[0] * p.shape[1] < 4:
        return None
    hsv = cv2.cvtColor(p, cv2.COLOR_BGR2HSV)
    h = cv2.calcHist([hsv], [0, 1], None, list(HIST_BINS), [0, 180, 0, 256])
    return cv2.normalize(h, h, 1.0, 0.0, cv2.NORM_L1)


def _blend(old: np.ndarray | None, new: np.ndarray | None, dt: float) -> np.ndarray | None:
    """A track's colours after `dt` seconds: HIST_KEEP of the old per RATE_STEP_S."""
    if old is None or new is None:
        return new if new is not None else old
    keep = kept(HIST_KEEP, dt)
    return cv2.addWeighted(old, keep, new, 1 - keep, 0.0)


NO_PAIR = 1e9  # cost of a pair outside the gate (never taken)


def assign_greedy(cost: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one pairs (row, column) taken cheapest first over the whole matrix (ties: the
    lower row, then column); pairs at NO_PAIR are never taken."""
    order = np.argsort(cost, axis=None, kind="stable")
    rows: set[int] = set()
    cols: set[int] = set()
    out = []
    for k in order:
        i, j = divmod(int(k), cost.shape[1])
        if cost[i, j] >= NO_PAIR:
            break
        if i not in rows and j not in cols:
            rows.add(i)
            cols.add(j)
            out.append((i, j))
    return out


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """The one-to-one pairs (row, column) of least total cost, as many as min(rows, columns).

    The Hungarian method with potentials (shortest augmenting paths, O(n^2 m)), the inner
    loop over columns done by numpy. Callers drop the pairs they priced as impossible.
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    if n > m:
        return [(i, j) for j, i in assign(cost.T)]
    a = cost.astype(np.float64)
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j]: row (1-based) matched to column j
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = a[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            left = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(left)) + 1
            delta = left[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            p[j0] = p[j1]
            j0 = j1
    return [(int(p[j]) - 1, j - 1) for j in range(1, m + 1) if p[j]]


def _patch(image: np.ndarray | None, box: Box, full_w: int, full_h: int) -> np.ndarray | None:
    """The analysis image under a full-resolution box (None without an image)."""
    if image is None:
        return None
    h, w = image.shape[:2]
    sx, sy = w / full_w, h / full_h
    x0, y0 = int(box[0] * sx), int(box[1] * sy)
    x1, y1 = (
        max(x0 + 1, int(round((box[0] + box[2]) * sx))),
        max(y0 + 1, int(round((box[1] + box[3]) * sy))),
    )
    p = image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    return p.copy() if p.size else None


PLANE_EVERY = 20  # boxes learned between two fits of the ground plane
PLANE_ROWS = 4  # bands of rows with a typical height before the ground plane is fitted
STACKED = 1.5  # a box this many expected heights tall holds objects one above another


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
        self._aspects: deque[float] = deque(maxlen=400)  # width/height of confirmed boxes
        self._aspect: float | None = None
        self._heights: deque[tuple[float, float]] = deque(maxlen=400)  # (ground row, height)
        self._learned = 0  # boxes learned so far (the plane is refitted every PLANE_EVERY)
        self._plane: tuple[int, tuple[float, float] | None] = (-PLANE_EVERY, None)
        self._cut: dict[Box, int] = {}  # this frame's parts of cut blobs -> the blob's number
        # line -> recent crossings (ts, direction, ground point, size, track)
        self._crossings: dict[str, list[tuple[float, str, Point, float, int]]] = {}

    @property
    def active(self) -> bool:
        """False when there is nothing to watch (the tracker is then skipped)."""
        return bool(self.zones or self.tripwires)

    def _split(
        self, boxes: list[Box], mask: np.ndarray | None, full_w: int, full_h: int
    ) -> list[Box]:
        """`split_merged` on the boxes as tall as a whole object at their row, keeping the cut
        only when every part is that tall too (a piece of a person is not cut into smaller
        pieces, and people are not cut into heads and legs). At a row where no object was
        learned the height expected from the ground plane stands in (`_expected_height`),
        for boxes about one object tall only: a box far taller than that holds objects one
        above another, which no vertical cut separates."""
        if mask is None:
            return boxes
        frag = self.tracker.cfg.fragment_height
        out: list[Box] = []
        self._cut = {}
        for n, b in enumerate(boxes):
            typical = self._typical_height((b[1] + b[3]) / full_h)
            if typical is None and 0 < b[0] and b[0] + b[2] < full_w:
                # Its width whole in the picture (a box cut by a side may be any shape).
                typical = self._expected_height(b, full_h)
                if typical is not None and b[3] / full_h > STACKED * typical:
                    typical = None
            if typical is None or b[3] / full_h < frag * typical:
                out.append(b)
                continue
            parts = split_merged([b], mask, full_w, full_h, self._aspect)
            if len(parts) > 1 and all(p[3] / full_h >= frag * typical for p in parts):
                out += parts
                self._cut.update(dict.fromkeys(parts, n))
            else:
                out.append(b)
        return out

    def _regroup(self, boxes: list[Box], full_w: int, full_h: int) -> list[Box]:
        """Fragments of a tracked object joined again into one box.

        A person standing still fades into the motion background and breaks into small
        pieces (an arm, a head): each would start a track of its own, then enter zones and
        dwell again. A box far shorter than this camera's typical object at the row where a
        confirmed track stands (learned, as the shape, from confirmed boxes), lying inside
        that track's last box, is a piece of that object; the pieces of one object become one
        box (their union).
        """
        cfg = self.tracker.cfg
        hosts = [t for t in self.tracker.tracks.values() if t.confirmed]
        if not hosts or cfg.fragment_height <= 0 or len(self._heights) < cfg.shape_samples:
            return boxes
        out: list[Box] = []
        pieces: dict[int, list[Box]] = {}
        sizes = {}
        for t in hosts:
            typical = self._typical_height(t.pos[1])
            sizes[t.id] = typical * full_h if typical is not None else t.box[3]
        for b in boxes:
            best, share = None, 0.0
            for t in hosts:
                if b[3] >= cfg.fragment_height * sizes[t.id]:
                    continue
                s = _inside(b, t.box, 0.2)
                if s > share:
                    best, share = t, s
            if best is not None and share >= 0.6:
                pieces.setdefault(best.id, []).append(b)
            else:
                out.append(b)
        for group in pieces.values():
            x0 = min(b[0] for b in group)
            y0 = min(b[1] for b in group)
            x1 = max(b[0] + b[2] for b in group)
            y1 = max(b[1] + b[3] for b in group)
            out.append((x0, y0, x1 - x0, y1 - y0))
        return out

    def _whole(self, t: Track, full_h: int) -> bool:
        """True once a track's box has been as tall as a whole object at its row (a track
        that was only ever a piece of one, a head or an arm, announces nothing)."""
        frag = self.tracker.cfg.fragment_height
        typical = self._typical_height(t.pos[1]) if frag > 0 else None
        return typical is None or t.box[3] / full_h >= frag * typical

    def _typical_height(self, y: float) -> float | None:
        """Median height (share of the picture) of confirmed boxes standing near row y."""
        near = [h for gy, h in self._heights if abs(gy - y) <= ROW_BAND]
        return float(np.median(near)) if len(near) >= 8 else None

    def _ground_plane(self) -> tuple[float, float] | None:
        """(slope, intercept) of an object's height (share of the picture) against its ground
        row: for a fixed camera over flat ground an upright person's height in pixels is
        linear in the row of the feet. Fitted robustly (Theil-Sen: the median of the slopes
        between every two rows, the median intercept) to the median heights of the learned
        boxes in bands of ROW_BAND rows (those with 8 boxes or more, as `_typical_height`
        wants), refitted every PLANE_EVERY boxes learned. None with fewer than PLANE_ROWS
        such bands, or when heights do not grow down the picture."""
        at, fit = self._plane
        if self._learned - at < PLANE_EVERY:
            return fit
        fit = None
        if self._heights:
            ys, hs = np.array(self._heights).T
            bands = np.floor(ys / ROW_BAND)
            rows, meds = [], []
            for k in np.unique(bands):
                near = bands == k
                if near.sum() >= 8:
                    rows.append(float(np.median(ys[near])))
                    meds.append(float(np.median(hs[near])))
            if len(rows) >= PLANE_ROWS:
                y, h = np.array(rows), np.array(meds)
                dy, dh = np.subtract.outer(y, y), np.subtract.outer(h, h)
                slope = float(np.median(dh[dy > 0] / dy[dy > 0]))
                if 0 < slope < 1:
                    fit = (slope, float(np.median(h - slope * y)))
        self._plane = (self._learned, fit)
        return fit

    def _expected_height(self, box: Box, full_h: int) -> float | None:
        """The height (share of the picture) of one object where `box` stands, from the
        ground plane (`_ground_plane`). A box cut by the bottom of the picture has no ground
        row of its own: it is taken as one object whose head is its top (the row whose height
        reaches up to that top), so a blob cut there is judged by the object it would be."""
        fit = self._ground_plane() if self.tracker.cfg.ground_plane else None
        if fit is None:
            return None
        a, c = fit
        foot = (box[1] + box[3]) / full_h
        if box[1] + box[3] >= full_h:
            foot = max(foot, (box[1] / full_h + c) / (1 - a))  # top = foot - (a * foot + c)
        h = a * foot + c
        return h if h > 0 else None

    def _learn_shape(self, box: Box, full_w: int, full_h: int) -> None:
        """Keep the typical width/height of this camera's single objects: a low percentile of
        recent confirmed boxes clear of the picture's edges (groups walking together make
        the wider boxes, so the median is already widened by them in a crowd)."""
        x, y, w, h = box
        if x <= 0 or y <= 0 or x + w >= full_w or y + h >= full_h or h <= 0:
            return  # cut by the edge: not its shape
        self._aspects.append(w / h)
        self._heights.append(((y + h) / full_h, h / full_h))
        self._learned += 1
        if len(self._aspects) >= self.tracker.cfg.shape_samples:
            self._aspect = float(np.percentile(self._aspects, ASPECT_PERCENTILE))

    def _same_object_announced(self, t: Track, z: Zone, full_h: int) -> Track | None:
        """For a track first seen inside the zone: another live track that already announced
        this zone and overlaps its box, stands right beside it, or, riding a shared box or
        missed, was last within a box height of where it was first seen (a track restarted on
        a standing person, or on one leaving the group while his old track still coasts in
        it; an object split into two boxes; a walker cut in two by a pole or a post in front:
        the second half starts a track where nobody came in). None otherwise: a track that
        walked in from outside is a new entry even beside others (a man joining a group)."""
        if t.first is None or not z.polygon.contains(*t.first):
            return None
        first = t.first
        return next(
            (
                o
                for o in self.tracker.tracks.values()
                if o is not t
                and z.id in o.announced
                and (
                    _overlap(o.box, t.box) >= 0.3
                    or _beside(o.box, t.box)
                    or (
                        (o.coasted > 0 or o.missed > 0)
                        and np.hypot(o.pos[0] - first[0], o.pos[1] - first[1]) <= o.box[3] / full_h
                    )
                )
            ),
            None,
        )

    def _sides(self, t: Track, full_w: int, full_h: int) -> tuple[dict[str, float], dict]:
        """(each line's side t stood on last, off the line, before this frame; each line's
        distance from t now, in t's box heights). Keeps in `t.beyond` the greatest distance
        t has reached past each line since it crossed it, from boxes of its own (not
        coasting): how far it went before any turn back."""
        was = dict(t.sides)
        depth: dict[str, float] = {}
        own = t.coasted == 0 and t.still == 0
        for line in self.tripwires:
            s = side_of(line.a, line.b, t.pos)
            if s == 0:
                continue
            t.sides[line.id] = s
            ax, ay = line.a[0] * full_w, line.a[1] * full_h
            bx, by = line.b[0] * full_w, line.b[1] * full_h
            px, py = t.pos[0] * full_w, t.pos[1] * full_h
            dist = abs((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / np.hypot(bx - ax, by - ay)
            depth[line.id] = float(dist) / max(1, t.box[3]) if own else 0.0
            if line.id in t.crossed and s * was.get(line.id, 0.0) > 0:
                t.beyond[line.id] = max(t.beyond.get(line.id, 0.0), depth[line.id])
        return was, depth

    def _on_same_object(self, tid: int, t: Track, ts: float) -> bool:
        """True when track `tid` may be on the object of track `t` crossing now: it has a
        position in this frame, or it last rode a box shared with others (whose object a new
        track may have taken over). A track that lost a box of its own is not splitting
        anything: a walker close behind it is another object; nor is one on another part of
        the blob t's box was cut from in this frame (`_split` judged them objects side by
        side, each of a whole object's height)."""
        o = self.tracker.tracks.get(tid)
        if o is None or not (o.seen >= ts - 1e-6 or o.coasted > 0):
            return False
        if (
            self.tracker.cfg.cut_apart
            and o.seen >= ts - 1e-6
            and o.coasted == 0
            and t.coasted == 0
            and t.hits >= 2  # crossed from a box of its own, not from the blob it came from
        ):
            mine, theirs = self._cut.get(t.box), self._cut.get(o.box)
            return mine is None or mine != theirs or o.box == t.box
        return True

    def _same_crossing(
        self, line: str, ts: float, went: str, t: Track, full_w: int, full_h: int
    ) -> bool:
        """Record t's crossing; True when another track crossed this line the same way
        moments ago at about the same place and may still be on t's object (one object split
        into two tracks, see `_on_same_object`)."""
        keep = self.tracker.cfg.same_crossing_s
        size = max(t.box[2] / full_w, t.box[3] / full_h)
        recent = [c for c in self._crossings.get(line, []) if ts - c[0] <= keep]
        same = any(
            tid != t.id
            and d == went
            and (p[0] - t.pos[0]) ** 2 + (p[1] - t.pos[1]) ** 2 <= max(size, sz) ** 2
            and self._on_same_object(tid, t, ts)
            for _, d, p, sz, tid in recent
        )
        recent.append((ts, went, t.pos, size, t.id))
        self._crossings[line] = recent
        return same

    def update(
        self,
        ts: float,
        boxes: list[Box],
        full_w: int,
        full_h: int,
        image: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        colour: np.ndarray | None = None,
    ) -> list[ZoneEvent | TripwireEvent | DwellEvent]:
        """Events caused by this frame's boxes (`image`: the small luma, for still objects;
        `mask`: the undilated motion mask, to cut blobs of objects side by side; `colour`: a
        BGR picture of the frame, any size, whose colours help tell objects apart)."""
        if not self.active:
            return []
        if self.tracker.cfg.split_blobs:
            boxes = self._split(boxes, mask, full_w, full_h)
        boxes = self._regroup(boxes, full_w, full_h)
        events: list[ZoneEvent | TripwireEvent | DwellEvent] = []
        for t in self.tracker.update(ts, boxes, full_w, full_h, image, colour):
            # A track riding another object's box (coasting) keeps its state but announces
            # nothing new: one object, one entry.
            big = t.box[2] * t.box[3] >= self.tracker.cfg.min_box * full_w * full_h
            if big and not t.whole:
                t.whole = self._whole(t, full_h)
            ok = t.confirmed and t.coasted == 0 and big and t.whole
            if ok and t.still == 0:
                self._learn_shape(t.box, full_w, full_h)
            for z in self.zones:
                now_in = z.polygon.contains(*t.pos)
                was_in = z.id in t.inside
                if now_in:
                    t.outside.pop(z.id, None)
                if now_in and not was_in:
                    t.inside[z.id] = ts
                    t.dwelt.discard(z.id)
                elif not now_in and was_in:
                    # Out for good only after leave_s outside: a ground point jittering over
                    # the edge of the zone (someone standing on it) is one stay.
                    left = t.outside.setdefault(z.id, ts)
                    if ts - left >= self.tracker.cfg.leave_s:
                        del t.inside[z.id]
                        del t.outside[z.id]
                        t.announced.discard(z.id)
                # One entry per stay, announced once the track is confirmed (also when it
                # appeared inside), and not again for a second track on the same object.
                if now_in and z.intrusion and ok and z.id not in t.announced:
                    t.announced.add(z.id)
                    same = self._same_object_announced(t, z, full_h)
                    if same is None:
                        events.append(ZoneEvent(ts=ts, zone=z.id, track=t.id, box=t.box))
                    else:
                        # The same object's stay (a track restarted on a standing man): it
                        # dwells once, counted from when it came in.
                        t.inside[z.id] = min(t.inside[z.id], same.inside.get(z.id, ts))
                        if z.id in same.dwelt:
                            t.dwelt.add(z.id)
                if now_in and z.dwell_s and z.id not in t.dwelt and ok:
                    stay = ts - t.inside[z.id]
                    if stay >= z.dwell_s:
                        t.dwelt.add(z.id)
                        events.append(
                            DwellEvent(
                                ts=ts, zone=z.id, track=t.id, seconds=round(stay, 3), box=t.box
                            )
                        )
            was, depth_now = self._sides(t, full_w, full_h)
            if t.prev is None:
                continue
            step = float(np.hypot(t.pos[0] - t.prev[0], t.pos[1] - t.prev[1]))
            size = max(t.box[2] / full_w, t.box[3] / full_h)
            if step > self.tracker.gate(size, self.tracker.dt):
                # A leap no object of that size makes between two frames: the track was handed
                # to a flicker or a neighbour after a miss; its crossing is not to be trusted.
                continue
            for line in self.tripwires:
                before = side_of(line.a, line.b, t.prev) or was.get(line.id, 0.0)
                now = side_of(line.a, line.b, t.pos)
                if before * now >= 0 or not segments_cross(t.prev, t.pos, line.a, line.b):
                    continue  # a point landing on the line crosses when it leaves it
                went = "left_to_right" if before < 0 else "right_to_left"
                last = t.crossed.get(line.id)
                depth = t.beyond.get(line.id, 0.0)
                t.crossed[line.id] = (ts, went)
                t.beyond[line.id] = depth_now.get(line.id, 0.0)
                if last is not None and last[1] != went:
                    cfg = self.tracker.cfg
                    turned = depth >= cfg.turn_depth and t.coasted == 0  # on a box of its own
                    if ts - last[0] <= cfg.recross_s + 1e-6 and not turned:
                        continue  # back over the line at once: box jitter in a crowd, not news
                if not t.whole or (t.coasted == 0 and not self._whole(t, full_h)):
                    # Made on a piece of an object (the legs of a man standing on the line,
                    # an arm), or by a track that was only ever one: announces nothing.
                    continue
                if self._same_crossing(line.id, ts, went, t, full_w, full_h):
                    continue  # one object, one crossing
                if t.coasted > 0 and t.surged:
                    # Riding a shared box on a speed read from a merged blob's jump: the
                    # prediction drifts over lines its object never reached.
                    continue
                if line.direction in ("both", went):
                    events.append(
                        TripwireEvent(ts=ts, line=line.id, direction=went, track=t.id, box=t.box)
                    )
        return events


MASK_GRID = (320, 180)  # raster for comparing rules with privacy masks
REFUSE_SHARE = 0.5  # a rule this much inside masks sees nothing: refused
WARN_SHARE = 0.1  # ... this much inside or along (within ~2% of the width): warned


def rule_mask_overlap(
    zones: list[Zone], tripwires: list[Tripwire], privacy: list[Polygon]
) -> list[tuple[str, float, float]]:
    """(rule id, share inside masks, share inside or along masks) for each zone and tripwire.

    Masked pixels are black before analysis, so nothing inside a mask can enter a zone or cross
    a line there; a line running along a mask edge only sees half of each object.
    """
    if not privacy or not (zones or tripwires):
        return []
    w, h = MASK_GRID
    mask = rasterise(privacy, w, h)
    near = cv2.dilate(mask, np.ones((7, 7), np.uint8))
    out = []
    for z in zones:
        r = rasterise([z.polygon], w, h).astype(bool)
        n = max(1, int(r.sum()))
        out.append((z.id, float(mask[r].sum()) / n, float(near[r].sum()) / n))
    for t in tripwires:
        r = np.zeros((h, w), np.uint8)
        a = (int(t.a[0] * (w - 1)), int(t.a[1] * (h - 1)))
        b = (int(t.b[0] * (w - 1)), int(t.b[1] * (h - 1)))
        cv2.line(r, a, b, 1, 1)
        sel = r.astype(bool)
        n = max(1, int(sel.sum()))
        out.append((t.id, float(mask[sel].sum()) / n, float(near[sel].sum()) / n))
    return out


def rule_mask_problems(
    zones: list[Zone], tripwires: list[Tripwire], privacy: list[Polygon]
) -> tuple[list[str], list[str]]:
    """(refusals, warnings) for rules inside or along privacy masks, as sentences."""
    refuse, warn = [], []
    for rid, inside, near in rule_mask_overlap(zones, tripwires, privacy):
        if inside >= REFUSE_SHARE:
            refuse.append(
                f"rule {rid!r} lies {inside:.0%} inside privacy masks, where the picture is "
                "blacked out: it could never fire"
            )
        elif near >= WARN_SHARE:
            warn.append(
                f"rule {rid!r} lies {near:.0%} inside or along privacy masks: objects there "
                "are partly hidden and may be missed"
            )
    return refuse, warn
