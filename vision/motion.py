"""Motion detection on downscaled luma: an adaptive background robust to global light changes.

Model, per pixel of the ~160-wide luma image: a running mean B and variance V. Each frame:

1. Light compensation: the ratio of frame to background is averaged over a coarse grid of cells
   (16 across), median-filtered across cells (so a cell holding a moving object does not count)
   and interpolated back to a smooth gain field G. Clouds, exposure steps and lamps switching
   on are smooth in space and are explained by G; objects are compact and are not.
2. Foreground where (I - G*B)^2 > k^2 * max(V, min_sigma^2).
3. Texture veto, only while the light is changing (G far from 1): a foreground pixel whose 5x5
   neighbourhood correlates with the background (NCC > 0.8) is lit, not moving.
4. When more than `global_share` of the watched area still changes, the whole frame changed
   (lights, IR switch, camera moved): nothing is reported and the background is re-seeded.
5. Selective update: background pixels learn at `alpha`, foreground ones 4x slower so a parked
   car is absorbed after a while.
6. Ghosts: a second, long-memory background learns only where nothing is in front (10x
   slower); foreground that matches it is the scene uncovered again (a person who stood
   still, then left), not motion.

From the second frame on motion is reported against the per-pixel median of the frames seen so
far (the first `warmup_frames` are all kept for that), then the running model takes over.
Nothing is reported for a few frames after a re-seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from pydantic import BaseModel, Field

from vision.frames import Prepared
from vision.geometry import Polygon, rasterise

Box = tuple[int, int, int, int]


class MotionConfig(BaseModel):
    """Tuning of the motion detector (defaults suit 2-10 fps analysis)."""

    warmup_frames: int = Field(default=20, ge=2)
    alpha: float = Field(
        default=0.04,
        gt=0,
        lt=1,
        description="background learning rate per 0.2 s (a frame at 5 fps), scaled to the "
        "time between frames: a man standing still fades in as many seconds at any rate",
    )
    k_sigma: float = Field(default=3.5, gt=0)
    min_sigma: float = Field(default=4.0, gt=0, description="noise floor, grey levels")
    min_area: float = Field(default=6e-4, ge=0, description="smallest box, share of frame")
    global_share: float = Field(default=0.45, gt=0, le=1)
    reseed_frames: int = Field(default=3, ge=0)
    grid_cells: int = Field(default=16, ge=4)
    ncc_veto: float = Field(default=0.8, gt=0, le=1)
    light_change: float = Field(default=0.06, gt=0, description="|G-1| that enables the veto")
    rel_sigma: float = Field(default=0.02, ge=0, description="noise floor, share of brightness")
    fg_rate: float = Field(
        default=0.25, ge=0, le=1, description="foreground learns this much slower"
    )
    slow_rate: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="long-memory background (ghosts) learns this much slower",
    )


RATE_STEP_S = 0.2  # rates and factors are tuned per this time (one frame at the default 5 fps)
MAX_STEP_S = 2.0  # a longer gap between frames learns as much as this


def kept(factor: float, dt: float) -> float:
    """What is left after `dt` seconds of something keeping `factor` per RATE_STEP_S."""
    return factor ** (dt / RATE_STEP_S)


def _per(rate: float, dt: float) -> float:
    """A learning rate given per RATE_STEP_S, for a step of dt seconds."""
    return 1.0 - kept(1.0 - rate, dt)


class MotionResult(BaseModel):
    """Motion in one frame: boxes are (x, y, w, h) in full-resolution pixels."""

    ts: float
    ready: bool
    share: float
    boxes: list[Box]
    global_change: bool = False


@dataclass
class _Model:
    b: np.ndarray
    v: np.ndarray
    slow: np.ndarray  # long-memory background, learned only where nothing is in front
    n: int = 0
    quiet_until: int = 0
    ts: float | None = None  # of the last frame
    tmp: dict[str, np.ndarray] = field(default_factory=dict)


class MotionDetector:
    """Per-camera motion detector; feed it `Prepared` frames in time order."""

    def __init__(
        self,
        config: MotionConfig | None = None,
        include: list[Polygon] | None = None,
        exclude: list[Polygon] | None = None,
    ) -> None:
        self.cfg = config or MotionConfig()
        self.include = include or []
        self.exclude = exclude or []
        self._m: _Model | None = None
        self._roi: np.ndarray | None = None
        self._roi_px = 1
        self._shape: tuple[int, int] | None = None
        self.last_mask: np.ndarray | None = None
        self.raw_mask: np.ndarray | None = None
        self._warm: list[np.ndarray] | None = None

    def reset(self) -> None:
        """Forget the background (e.g. after the camera was moved on purpose)."""
        self._m = None
        self._warm = None

    def _setup(self, small: np.ndarray) -> None:
        h, w = small.shape
        roi = rasterise(self.include, w, h) if self.include else np.ones((h, w), np.uint8)
        if self.exclude:
            roi[rasterise(self.exclude, w, h) > 0] = 0
        self._roi = roi
        self._roi_px = max(1, int(roi.sum()))
        self._shape = (h, w)
        f = small.astype(np.float32)
        var0 = np.full((h, w), (2 * self.cfg.min_sigma) ** 2, np.float32)
        self._m = _Model(b=f.copy(), v=var0, slow=f.copy(), n=1)
        self._warm: list[np.ndarray] | None = [small.copy()]

    def update(self, p: Prepared) -> MotionResult:
        """Analyse one frame; returns boxes and the moving share of the watched area."""
        small = p.small
        cfg = self.cfg
        if self._m is None or self._shape != small.shape:
            self._setup(small)
            return MotionResult(ts=p.ts, ready=False, share=0.0, boxes=[])
        m = self._m
        assert self._roi is not None
        i = small.astype(np.float32)
        m.n += 1
        warm = self._warm is not None
        if self._warm is not None:
            # Warm-up: keep the frames; the background is their per-pixel median, so people and
            # cars passing meanwhile leave no ghosts once a few frames are in. Motion is
            # reported from the second frame on (against the median so far, with a cautious
            # noise floor until three frames give a spread).
            self._warm.append(small.copy())
            self._seed_from(self._warm)
            if len(self._warm) >= cfg.warmup_frames:
                self._warm = None

        h, w = small.shape
        gw = min(cfg.grid_cells, w)
        gh = max(1, int(round(gw * h / w)))
        ic = cv2.resize(i, (gw, gh), interpolation=cv2.INTER_AREA)
        bc = cv2.resize(m.b, (gw, gh), interpolation=cv2.INTER_AREA)
        ratio = (ic + 4.0) / (bc + 4.0)
        ratio = cv2.medianBlur(ratio, 3) if gh >= 3 else ratio
        np.clip(ratio, 0.25, 4.0, out=ratio)
        dev = float(np.abs(ratio - 1.0).max())
        lighting = dev > cfg.light_change
        g = cv2.resize(ratio, (w, h), interpolation=cv2.INTER_LINEAR)
        gb = np.minimum(m.b * g, 255.0)
        d = i - gb
        d2 = d * d
        rel = gb * cfg.rel_sigma
        thr = np.maximum(np.maximum(m.v, cfg.min_sigma**2), rel * rel) * (cfg.k_sigma**2)
        fg = (d2 > thr).view(np.uint8)
        if not warm:
            # Ghosts: where an object stood long enough to be absorbed and then left, the
            # picture is the scene again. It differs from the running background but matches
            # the long-memory one: not motion.
            idx = np.flatnonzero(fg)  # only foreground pixels need the check (few)
            if idx.size:
                ds = i.ravel()[idx] - np.minimum(m.slow.ravel()[idx] * g.ravel()[idx], 255.0)
                fg.ravel()[idx] = ds * ds > thr.ravel()[idx]
        if lighting and fg.any():
            fg &= self._ncc_keep(i, gb)
            # Highlights clip, so they brighten less than the gain: not motion.
            fg &= ((i < 225.0) | (gb < i)).view(np.uint8)
        fg &= self._roi
        raw_share = float(np.count_nonzero(fg)) / self._roi_px
        warming = m.n <= m.quiet_until
        if raw_share > cfg.global_share:
            # The whole picture changed: re-seed the background from this frame.
            m.b[:] = i
            m.slow[:] = i
            m.quiet_until = m.n + cfg.reseed_frames
            if self._warm is not None:
                self._warm = [small.copy()]  # the warm-up frames showed another picture
            self.last_mask = np.zeros_like(fg)
            return MotionResult(ts=p.ts, ready=not warming, share=0.0, boxes=[], global_change=True)

        clean = cv2.medianBlur(fg, 3)
        self.raw_mask = clean
        clean = cv2.dilate(clean, None)
        self.last_mask = clean
        if warm:  # the median of the warm-up frames is the background for now
            boxes = self._boxes(clean, p.full_w, p.full_h)
            share = float(np.count_nonzero(clean & self._roi)) / self._roi_px
            return MotionResult(ts=p.ts, ready=True, share=round(share, 5), boxes=boxes)
        # Selective background update (foreground learns slower), by the time since the
        # last frame: the rates are per RATE_STEP_S.
        steps = RATE_STEP_S if m.ts is None or p.ts <= m.ts else min(p.ts - m.ts, MAX_STEP_S)
        m.ts = p.ts
        a = _per(cfg.alpha, steps)
        bg = (clean == 0).view(np.uint8)
        cv2.accumulateWeighted(i, m.b, a, mask=bg)
        cv2.accumulateWeighted(i, m.b, _per(cfg.alpha * cfg.fg_rate, steps), mask=clean)
        cv2.accumulateWeighted(np.minimum(d2, thr * 4), m.v, a, mask=bg)
        cv2.accumulateWeighted(i, m.slow, _per(cfg.alpha * cfg.slow_rate, steps), mask=bg)
        if warming:
            return MotionResult(ts=p.ts, ready=False, share=0.0, boxes=[])
        boxes = self._boxes(clean, p.full_w, p.full_h)
        share = float(np.count_nonzero(clean & self._roi)) / self._roi_px
        return MotionResult(ts=p.ts, ready=True, share=round(share, 5), boxes=boxes)

    def _seed_from(self, frames: list[np.ndarray]) -> None:
        assert self._m is not None
        stack = np.stack(frames).astype(np.float32)
        med = np.median(stack, axis=0)
        self._m.b = med.astype(np.float32)
        self._m.slow = self._m.b.copy()
        if len(frames) < 3:
            # Two frames give no spread: a cautious floor (twice the noise floor).
            self._m.v = np.full(med.shape, (2 * self.cfg.min_sigma) ** 2, np.float32)
            return
        mad = np.median(np.abs(stack - med), axis=0) * 1.4826
        self._m.v = np.maximum(mad * mad, self.cfg.min_sigma**2).astype(np.float32)

    def _ncc_keep(self, i: np.ndarray, b: np.ndarray) -> np.ndarray:
        """1 where the 5x5 neighbourhood does NOT look like the background re-lit."""
        k = (5, 5)
        mi, mb = cv2.blur(i, k), cv2.blur(b, k)
        vi = cv2.blur(i * i, k) - mi * mi
        vb = cv2.blur(b * b, k) - mb * mb
        cov = cv2.blur(i * b, k) - mi * mb
        textured = (vb > 16.0) & (vi > 4.0)
        ncc = cov / np.sqrt(np.maximum(vi * vb, 1e-3))
        lit = textured & (ncc > self.cfg.ncc_veto)
        return (~lit).view(np.uint8)

    def _boxes(self, mask: np.ndarray, full_w: int, full_h: int) -> list[Box]:
        h, w = mask.shape
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_px = max(1.0, self.cfg.min_area * h * w)
        sx, sy = full_w / w, full_h / h
        out: list[Box] = []
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            if bw * bh < min_px or cv2.countNonZero(mask[y : y + bh, x : x + bw]) < min_px:
                continue
            out.append((int(x * sx), int(y * sy), int(round(bw * sx)), int(round(bh * sy))))
        return out
