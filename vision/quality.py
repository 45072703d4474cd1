"""Video-quality diagnosis (DESIGN §5.5): every fault scored, thresholded, debounced per camera.

Each fault has a score oriented so that larger is worse and a threshold: the fault is "over"
in a frame when score >= threshold. Hysteresis: a fault turns on after `on_count` consecutive
over frames and off after `off_count` consecutive frames that are not. A fault that explains
others suppresses them (a black screen is not also "too dark"; a shaking camera does not also
"change scene"); see PRECEDENCE. A camera with no active fault is intact.

Scores, with the default thresholds:

| code | score | threshold |
|---|---|---|
| signal_loss | share of q pixels within +-1 of the commonest grey (a flat screen) when the screen is one even field; 1.0 after `signal_timeout_s` without frames | 0.95 |
| frozen | seconds the picture stayed pixel-identical, or the stream timestamps (pts) stood still | 1.2 s |
| occlusion | share of textured reference cells that lost their texture (plain views: share of still cells much darker or brighter than the rest; 1.0 when the fine grain matches the learned one nowhere near and the still cells are much darker or brighter) | 0.3 |
| blur | 1 - fine-scale sharpness/contrast relative to the reference | 0.3 |
| too_dark | 1 - max(mean, p95/3)/255 | 0.9 |
| too_bright | max(mean/255, share of pixels >= 240) | 0.8 |
| colour_cast | shift of mean Lab chroma from the reference (needs chroma/spread >= 1) | 18 |
| snow_noise | robust per-pixel noise sigma, grey levels | max(12, 3x reference) |
| stripes | new spectral peak x its evenness over the picture (features.stripe_peak), on the learned view | 1.0 |
| scene_change | 1 - NCC of the structure with the reference's (plain views: 1 - match of the fine grain with the learned grain within 16 px, relative to a clean frame's, / 0.35) | 0.4 |
| shake | RMS frame-to-frame shift (block phase correlation; plain views: grain registration, else full-q phase correlation), % of width, when the shifts keep changing direction | 0.5 |
| ptz_drift | steady shift speed, % of width per second, when the shifts keep one direction | 2.0 |
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import BaseModel, Field

from hardware.contract.analytics import FaultScore, QualityEvent
from vision.faults import FAULT_CODES
from vision.features import Features, block_shift, fine_shift, measure, notch, stripe_peak
from vision.frames import Prepared
from vision.geometry import Polygon, rasterise
from vision.reference import (
    JUDGE_STD,
    Reference,
    block_ncc,
    grain,
    grain_register,
    masked_ncc,
    ncc,
)

# suppressor -> faults it explains away (evaluated in FAULT_ORDER).
PRECEDENCE: dict[str, tuple[str, ...]] = {
    "signal_loss": tuple(c for c in FAULT_CODES if c != "signal_loss"),
    "frozen": ("shake", "ptz_drift"),
    # A still cover repeats the same pixels: that is the cover, not a frozen stream.
    "occlusion": ("frozen", "too_dark", "blur", "scene_change", "stripes", "shake", "ptz_drift"),
    "too_dark": ("blur", "colour_cast", "snow_noise", "stripes", "scene_change"),
    "too_bright": ("blur", "occlusion", "colour_cast", "snow_noise", "stripes", "scene_change"),
    "snow_noise": ("blur", "scene_change", "stripes"),
    "stripes": ("shake", "ptz_drift", "scene_change", "blur", "snow_noise"),
    "ptz_drift": ("scene_change", "shake", "blur", "occlusion"),
    "shake": ("scene_change", "blur"),
    "blur": ("scene_change",),
}
FAULT_ORDER: tuple[str, ...] = (
    "signal_loss",
    "too_bright",
    "occlusion",
    "frozen",
    "too_dark",
    "stripes",
    "snow_noise",
    "ptz_drift",
    "shake",
    "blur",
    "colour_cast",
    "scene_change",
)
assert set(FAULT_ORDER) == set(FAULT_CODES)
DIM_GAIN = 0.5  # brightness of the visible cells against the reference below which ...
DIM_LAYOUT = 0.8  # ... a picture whose cell layout still matches this well is dimmed, not covered
DIM_STRUCTURE = 0.5  # ... as is one whose fine structure matches this well (relative to clean)
PLAIN_STEP = 0.6  # brightness ratio to the rest of the picture that marks a cover on a plain view
PLAIN_KEPT = 3  # cells that must keep the brightness for the rest to be covered
STRIPES_LAYOUT = 0.7  # cell layout match that interference leaves (a new view does not)
STRIPES_STRUCTURE = 0.5  # ... or fine structure match, relative to a clean frame's
GRAIN_SCALE = 0.35  # plain views: grain match (relative to a clean frame's) that scores 0 ...
# ... for a scene change; at the threshold (0.4) the match is 0.6 x this (a clean road with a
# car and the exposure dip it causes scored >= 0.33, a moved view or a cover <= 0.11)
GRAIN_DEPENDABLE = 0.4  # the learned grain must match its own learning frames this well ...
GRAIN_NOISE = 2.0  # ... and a frame's noise stay under this many times the learned noise (+1)
# for the grain to be judged (sensor noise at night drowns it: no judgement, not "moved")
GRAIN_ENERGY = 0.5  # grain left (RMS against the reference's) for the match to be judged
GRAIN_STEP = 0.25  # peak NCC of the grain frame to frame for a camera shift to count
COVER_DIM = 0.75  # plain views, another picture: still cells this much darker (or brighter) ...
COVER_DARK = 0.3  # ... with nothing seen moving, or this much even with something moving
BLANK_SPREAD = 0.25  # grey levels around the median cell mean that count as one even field
BLANK_EVEN = 0.9  # share of cells in that field for a flat frame to be a lost signal (what a
# decoder or recorder paints is even to the grey level but for a caption under 10% of the
# picture; a physical cover has some gradient)


class QualityConfig(BaseModel):
    """Thresholds and debouncing of the quality checks (defaults for 1-10 fps)."""

    on_count: int = Field(default=3, ge=1)
    off_count: int = Field(default=5, ge=1)
    learn_frames: int = Field(default=10, ge=2)
    adapt_rate: float = Field(default=0.01, ge=0, lt=1)
    signal_timeout_s: float = Field(default=1.5, gt=0)
    frozen_s: float = Field(default=1.2, gt=0)
    frozen_min_repeats: int = Field(default=2, ge=1)
    frozen_pixels_need_pts: bool = Field(
        default=False,
        description="only trust stalled stream timestamps (for static scenes on H.264 with "
        "skip frames, which can decode to identical pixels)",
    )
    identical_mad: float = Field(default=0.25, ge=0, description="mean |diff| that is 'same'")
    flat: float = 0.95
    occlusion: float = 0.3
    blur: float = 0.3
    too_dark: float = 0.9
    too_bright: float = 0.8
    colour_cast: float = 18.0
    colour_cast_k: float = 1.0
    colour_cast_abs: float = 30.0
    snow_noise_min: float = 12.0
    snow_noise_ratio: float = 3.0
    snow_noise_abs: float = 20.0
    stripes: float = 1.0
    scene_change: float = 0.4
    shake: float = 0.5
    ptz_drift: float = 2.0
    motion_window: int = Field(default=5, ge=3)
    min_shift: float = Field(default=0.25, ge=0, description="frame shift that counts, % width")
    min_profile_ncc: float = Field(default=0.4, ge=-1, le=1)
    direction_consistency: float = 0.6


class QualityReport(BaseModel):
    """The diagnosis after one frame."""

    ts: float
    intact: bool
    faults: list[FaultScore]
    scores: dict[str, float]
    reference_ready: bool
    changed: bool = Field(description="the set of active faults differs from the previous report")

    def codes(self) -> list[str]:
        return [f.code for f in self.faults]

    reason: str | None = Field(default=None, description="why there is no frame (signal loss)")

    def to_event(self, thumbnail_jpeg_b64: str | None = None) -> QualityEvent:
        """The analytics payload of this report."""
        return QualityEvent(
            ts=self.ts,
            intact=self.intact,
            faults=self.faults,
            thumbnail_jpeg_b64=thumbnail_jpeg_b64,
            reason=self.reason if "signal_loss" in self.codes() else None,
        )


def _cells_box(cells: np.ndarray) -> list[float] | None:
    """Normalised [x, y, w, h] around the true cells of a grid (None when there are none)."""
    ys, xs = np.nonzero(cells)
    if xs.size == 0:
        return None
    gh, gw = cells.shape
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    return [
        round(x0 / gw, 4),
        round(y0 / gh, 4),
        round((x1 - x0) / gw, 4),
        round((y1 - y0) / gh, 4),
    ]


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - float(a.mean())
    b = b - float(b.mean())
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / den if den > 1e-6 else 0.0


@dataclass
class _Hyst:
    active: bool = False
    on_run: int = 0
    off_run: int = 0
    score: float = 0.0
    threshold: float = 0.0


class QualityAnalyzer:
    """Per-camera quality diagnosis; feed `Prepared` frames in time order."""

    def __init__(
        self,
        config: QualityConfig | None = None,
        reference: Reference | None = None,
        privacy: list[Polygon] | None = None,
    ):
        self.cfg = config or QualityConfig()
        self.privacy = privacy or []
        self._valid: dict[tuple[int, int], np.ndarray] = {}
        self.ref = reference or Reference(learn_frames=self.cfg.learn_frames)
        self._state = {c: _Hyst() for c in FAULT_CODES}
        self._prev: Features | None = None
        self._last_frame_ts: float | None = None
        self._same_since: float | None = None
        self._same_count = 0
        self._stall_since: float | None = None
        self._shifts: deque[tuple[float, float, float]] = deque(maxlen=self.cfg.motion_window)
        self._active: frozenset[str] = frozenset()
        self.last_features: Features | None = None
        self.last_layout = 1.0
        self._moving: np.ndarray | None = None
        self._static_at: dict[tuple[int, int], np.ndarray | None] = {}
        self._measured_ncc: tuple[float, float] | None = None
        self._struct_rel: float | None = None  # fine structure match / a clean frame's
        self._coarse_rel: float | None = None  # ... and the coarse one
        # Plain views: this frame's grain, its match with the learned grain (relative to a
        # clean frame's) and its RMS against the learned grain's.
        self._grain: np.ndarray | None = None
        self._grain_prev: np.ndarray | None = None
        self._grain_match: tuple[float, float] | None = None
        # ... and where it lies against the learned grain (dx, dy, peak NCC), now and before
        self._grain_at: tuple[float, float, float] | None = None
        self._grain_at_prev: tuple[float, float, float] | None = None
        self._reason: str | None = None
        self._areas: dict[str, list[float] | None] = {}  # fault -> normalised box this frame
        self._area_on: dict[str, list[float] | None] = {}  # ... when it turned on

    # ---- public -----------------------------------------------------------------------------

    def approve_change(self) -> None:
        """An operator approved the camera's new view: relearn the reference, clear faults."""
        self.ref.reset()
        self._state = {c: _Hyst() for c in FAULT_CODES}
        self._shifts.clear()
        self._grain_prev = None

    @property
    def active(self) -> frozenset[str]:
        """Currently active fault codes."""
        return self._active

    def no_frame(self, ts: float, reason: str | None = None) -> QualityReport:
        """The source delivered nothing at ts (dead, timed out): signal loss after the timeout.

        `reason` (e.g. the source's last error) travels with the signal-loss report."""
        since = self._last_frame_ts
        lost = since is None or ts - since >= self.cfg.signal_timeout_s
        st = self._state["signal_loss"]
        if lost:
            st.active, st.score, st.threshold = True, 1.0, self.cfg.flat
            st.on_run, st.off_run = self.cfg.on_count, 0
            if since is None:
                self._last_frame_ts = None
        rep = self._report(ts, {"signal_loss": 1.0 if lost else st.score})
        if reason and "signal_loss" in rep.codes():
            rep.reason = reason[:300]
            if reason != self._reason:
                rep.changed = True  # a new reason is news even if the fault was already on
            self._reason = reason
        return rep

    def update(self, p: Prepared, moving: np.ndarray | None = None) -> QualityReport:
        """Diagnose one frame; `moving` (uint8, like p.small) marks pixels the motion detector
        saw moving, which the structural comparison with the reference then leaves out (busy
        traffic is not a changed scene)."""
        f = measure(p, *self._valid_masks(p))
        self._measured_ncc = None
        self._static_at.clear()
        self._areas.clear()
        self.last_features = f
        self._moving = None
        if moving is not None and moving.shape == f.hp.shape:
            share = cv2.countNonZero(moving) / moving.size
            # Half the picture "moving" is the camera or the light, not things in the scene.
            self._moving = moving if share < 0.5 else None
        self._grain_at_prev = self._grain_at
        self._grain, self._grain_match, self._grain_at = None, None, None
        rg = self.ref.grain
        if (
            self.ref.ready
            and rg is not None
            and rg.shape == f.q.shape
            and self.ref.grain_ncc >= GRAIN_DEPENDABLE
            and f.noise <= GRAIN_NOISE * self.ref.noise + 1.0
        ):
            g = grain(f.q)
            keep = self._static(g.shape)
            gx, gy, peak = grain_register(rg, g, keep)
            self._grain = g if keep is None else g * keep  # what moves blanked
            self._grain_at = (gx, gy, peak)
            self._grain_match = (
                peak / max(0.2, self.ref.grain_ncc),
                masked_ncc(g, rg, keep)[1],
            )
        scores, thresholds = self._scores(f)
        over = self._decide(scores, thresholds)
        self._debounce(scores, thresholds, over)
        plausible = not any(over.get(c) for c in ("signal_loss", "too_dark", "too_bright"))
        if not self.ref.ready:
            if plausible and not over.get("frozen"):
                self.ref.learn(f)
        elif (
            self.cfg.adapt_rate > 0
            and not self._active
            and all(
                scores.get(c, 0.0) < 0.8 * thresholds[c] for c in FAULT_CODES if c != "scene_change"
            )
            and not any(self._state[c].on_run for c in FAULT_CODES)
        ):
            # Only what stands still is learned, so passing crowds and traffic never become
            # the reference, and slow changes (daylight, a parked car) are followed.
            self.ref.adapt(f, self.cfg.adapt_rate, self._static(f.hp.shape))
            # What a clean frame scores follows too (slowly, 5%/frame): a learning phase
            # whose frames were alike (codec-frozen noise) must not set the bar too high.
            m = self._measured_ncc
            if m is not None:
                r0, r1 = self.ref.self_ncc
                self.ref.self_ncc = (0.95 * r0 + 0.05 * m[0], 0.95 * r1 + 0.05 * m[1])
        self._prev = f
        self._grain_prev = self._grain
        self._last_frame_ts = f.ts
        return self._report(f.ts, scores)

    def _valid_masks(self, p: Prepared) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Non-masked pixels at the small and half-q sizes (None without privacy masks)."""
        if not self.privacy:
            return None, None
        out = []
        q2h, q2w = (p.q.shape[0] + 1) // 2, (p.q.shape[1] + 1) // 2
        if p.q.shape[1] < 2 * p.small.shape[1]:
            q2h, q2w = p.q.shape
        for h, w in (p.small.shape, (q2h, q2w)):
            m = self._valid.get((h, w))
            if m is None:
                m = (1 - rasterise(self.privacy, w, h)).astype(np.uint8)
                self._valid[(h, w)] = m
            out.append(m)
        return out[0], out[1]

    # ---- scoring ----------------------------------------------------------------------------

    def _scores(self, f: Features) -> tuple[dict[str, float], dict[str, float]]:
        cfg, ref = self.cfg, self.ref
        s: dict[str, float] = {}
        t: dict[str, float] = {c: float(getattr(cfg, c, 0.0)) for c in FAULT_CODES}
        t["signal_loss"] = cfg.flat
        t["frozen"] = cfg.frozen_s
        prev = self._prev
        w = f.hp.shape[1]

        s["signal_loss"] = f.flat_share if f.mode < 235 else 0.0
        if f.mode < 40 and f.sharp_q >= 0.3:
            s["signal_loss"] = 0.0  # a very dark picture that still has detail: too dark
        s["frozen"] = self._frozen_seconds(f, prev)
        s["too_dark"] = 1.0 - max(f.mean, f.p95 / 3.0) / 255.0
        s["too_bright"] = max(f.mean / 255.0, f.sat_share)

        # Frame-to-frame shift of the static background only (blocks where nothing moves).
        if prev is not None and prev.hp.shape == f.hp.shape:
            dx, dy, n = 0.0, 0.0, 1  # a frozen picture (the same again) did not move
            if s["frozen"] == 0.0:
                dx, dy, n = block_shift(prev.hp, f.hp, self._moving)
            if n == 0 and prev.q.shape == f.q.shape and self._plain_view():
                k = w / f.q.shape[1]
                step = None
                now, before = self._grain_at, self._grain_at_prev
                if now and before and min(now[2], before[2]) >= GRAIN_STEP:
                    # Both frames registered on the learned grain: the camera moved by the
                    # difference. This holds while a car crosses (the whitened phase
                    # correlation follows the car).
                    step = (now[0] - before[0], now[1] - before[1])
                elif self._grain is not None and self._grain_prev is not None:
                    # Beyond the search range of the learned grain (a drift): frame to
                    # frame, what moves blanked in both.
                    gx, gy, peak = grain_register(self._grain_prev, self._grain)
                    if peak >= GRAIN_STEP:
                        step = (gx, gy)
                if step is None:
                    step = fine_shift(prev.q, f.q, self._static(f.q.shape))
                if step is not None:
                    dx, dy = step[0] * k, step[1] * k
            dt = max(1e-3, f.ts - prev.ts)
            self._shifts.append((100.0 * dx / w, 100.0 * dy / w, dt))
        s["shake"], s["ptz_drift"] = self._motion_scores()

        ready = ref.ready and ref.compatible(f)
        if ready:
            assert ref.cell_std is not None and ref.cell_mean is not None and ref.hp is not None
            assert ref.power_max is not None
            # The picture's layout (16x9 cell means) against the learned one: interference
            # bars and a darker or brighter exposure keep it; a new view or a cover does not.
            layout = _ncc(f.cell_mean, ref.cell_mean)
            self.last_layout = layout
            sharp = f.sharp_q / (f.contrast + 1.0)
            s["blur"] = 1.0 - sharp / ref.sharp_q if ref.sharp_q > 1e-6 else 0.0
            t["snow_noise"] = max(cfg.snow_noise_min, cfg.snow_noise_ratio * ref.noise)
            s["snow_noise"] = f.noise
            judge = ref.cell_std > JUDGE_STD
            n_judge = int(judge.sum())
            # The camera's own brightness change, from the cells a cover leaves alone: the
            # upper quartile of the per-cell ratio to the learned reference (a dark cover lowers
            # the frame's mean, but not the brightness of what is still visible).
            ratio = (f.cell_mean + 2.0) / (ref.cell_mean + 2.0)
            gain = float(np.percentile(ratio[judge], 75)) if n_judge else 1.0
            # A cell is covered when its texture fell far below what that brightness change
            # explains (a darker scene keeps its texture in proportion; a cover does not).
            # Blown-out cells are too bright, not covered.
            covered = (
                (f.cell_std < 0.35 * ref.cell_std * min(4.0, max(gain, 0.02)) + 0.5)
                & judge
                & (f.cell_mean < 235.0)
            )
            if not self._plain_view():
                s["occlusion"] = float(covered.sum()) / n_judge
            else:
                # Too few textured cells (a plain view): a cover shows as part of the picture
                # turned much darker or brighter than the rest, which keeps its brightness.
                covered = self._plain_cover(f)
                s["occlusion"] = float(covered.mean())
                if self._grain_cover(f, s):
                    covered = np.ones_like(covered)
                    s["occlusion"] = 1.0
            s["scene_change"] = self._scene_change(f)
            s["stripes"] = self._stripes(f, layout)
            dimmed = self._struct_rel is not None and self._struct_rel >= DIM_STRUCTURE
            if gain < DIM_GAIN and (layout >= DIM_LAYOUT or dimmed):
                # The whole picture went dark but kept the scene's layout or structure: the
                # camera's own exposure (too dark), whose texture sank towards the quantisation,
                # not a cover.
                s["occlusion"] = 0.0
            rest = judge & ~covered
            if s["occlusion"] > 0 and int(rest.sum()) >= 3:
                kept = f.cell_std[rest] / (ref.cell_std[rest] * min(4.0, max(gain, 0.02)) + 0.5)
                if float(np.median(kept)) < 0.6:
                    s["occlusion"] = 0.0  # the uncovered part lost its texture too: blur
            self._areas["occlusion"] = _cells_box(covered)
            if s["occlusion"] >= cfg.occlusion and not self._rest_matches(f, judge & ~covered):
                s["occlusion"] = 0.0  # the uncovered part changed too: a new view, not a cover
            if (
                s["signal_loss"] >= cfg.flat
                and (s["occlusion"] >= cfg.occlusion or s["too_dark"] >= cfg.too_dark)
                and not self._blank_screen(f, layout)
            ):
                # Flat, but the camera's own scene dimmed (its layout is still there) or an
                # uneven field (a cover, a cap), which the cover or darkness test names.
                s["signal_loss"] = 0.0
            if f.chroma is not None and ref.chroma is not None:
                shift = float(np.hypot(f.chroma[0] - ref.chroma[0], f.chroma[1] - ref.chroma[1]))
                k = float(np.hypot(*f.chroma)) / (f.chroma_spread + 1.0)
                s["colour_cast"] = shift if k >= cfg.colour_cast_k else 0.0
            else:
                s["colour_cast"] = 0.0
        else:
            # No reference yet: only absolute checks.
            t["snow_noise"] = cfg.snow_noise_abs
            s["snow_noise"] = f.noise
            t["colour_cast"] = cfg.colour_cast_abs
            if f.chroma is not None:
                d = float(np.hypot(*f.chroma))
                k = d / (f.chroma_spread + 1.0)
                s["colour_cast"] = d if k >= 2.0 else 0.0
            else:
                s["colour_cast"] = 0.0
            for c in ("blur", "stripes", "occlusion", "scene_change"):
                s[c] = 0.0
        return s, t

    def _stripes(self, f: Features, layout: float) -> float:
        """Interference bars: a new frame-wide periodic pattern over the learned layout.

        A camera turned to a view with periodic facades also brings a new peak; that view has
        neither the learned layout (16x9 cell means) nor the learned fine structure. Bars on
        the same view keep one of them: the structure where the view has some, else the layout
        once the bars are taken out at their frequency (bars strong enough to change the cell
        means of a low-contrast view). A plain view (no structure to match) has no facades to
        bring into view.
        """
        ref = self.ref
        assert ref.power_max is not None and ref.cell_mean is not None
        score, v, u = stripe_peak(f.power, ref.power_max, f.q2)
        if score < self.cfg.stripes or layout >= STRIPES_LAYOUT:
            return score
        rel = self._struct_rel
        if rel is None or rel >= STRIPES_STRUCTURE:
            return score
        gh, gw = ref.cell_mean.shape
        rest = notch(f.q2, v, u) + float(f.cell_mean.mean())
        cells = cv2.resize(rest, (gw, gh), interpolation=cv2.INTER_AREA)
        return score if _ncc(cells, ref.cell_mean) >= STRIPES_LAYOUT else 0.0

    def _plain_view(self) -> bool:
        """The learned view has too few textured cells to judge by texture (asphalt, a wall)."""
        return self.ref.ready and self.ref.plain()

    def _plain_cover(self, f: Features) -> np.ndarray:
        """Cells of a plain view (asphalt, a wall) under a cover, judged by brightness only.

        The still cells (nothing seen moving there) are compared with the learned brightness;
        the brightest tenth of them sets the camera's own exposure. Still cells more than
        PLAIN_STEP darker (or brighter) than that are covered, provided some still cells kept
        it: a whole picture turning darker is the light or the exposure, not a cover.
        """
        ref = self.ref
        assert ref.cell_mean is not None
        ratio = (f.cell_mean + 2.0) / (ref.cell_mean + 2.0)
        keep = self._static(f.hp.shape)
        still = np.ones(ratio.shape, bool)
        if keep is not None:
            gh, gw = ratio.shape
            still = cv2.resize(keep, (gw, gh), interpolation=cv2.INTER_AREA) > 0.99
        none = np.zeros(ratio.shape, bool)
        if int(still.sum()) < ratio.size // 2:
            return none
        r = ratio[still]
        hi, lo = float(np.percentile(r, 90)), float(np.percentile(r, 10))
        # Only still cells count on both sides: a passing white car makes the camera's
        # exposure darken the road while its own cells stay bright (not a cover).
        darker = still & (ratio < PLAIN_STEP * hi)
        if int((still & ~darker).sum()) >= PLAIN_KEPT and darker.any():
            return darker
        brighter = still & (ratio > lo / PLAIN_STEP)
        if int((still & ~brighter).sum()) >= PLAIN_KEPT and brighter.any():
            return brighter
        return none

    def _grain_other(self) -> bool:
        """Plain view: the grain matches the learned one at no nearby offset (another picture)."""
        m = self._grain_match
        return m is not None and m[0] < (1.0 - self.cfg.scene_change) * GRAIN_SCALE

    def _grain_cover(self, f: Features, s: dict[str, float]) -> bool:
        """Plain view showing another picture that is also much darker or brighter where
        nothing moves: a cover (a moved camera shows the same kind of ground, as bright).
        A passing white car dims the camera's exposure too, so a dimming alone only counts
        with nothing seen moving, unless it is far beyond what exposure does. A picture dark
        or bright beyond the absolute limits is left to those checks (a dimmed plain view
        loses its grain to the quantisation as a cover does)."""
        ref, cfg = self.ref, self.cfg
        if not self._grain_other() or ref.cell_mean is None:
            return False
        if s["too_dark"] >= cfg.too_dark or s["too_bright"] >= cfg.too_bright:
            return False
        ratio = (f.cell_mean + 2.0) / (ref.cell_mean + 2.0)
        keep = self._static(f.hp.shape)
        mv = self._moving
        moving = cv2.countNonZero(mv) / mv.size if mv is not None else 0.0
        if keep is not None:
            gh, gw = ratio.shape
            still = cv2.resize(keep, (gw, gh), interpolation=cv2.INTER_AREA) > 0.99
            if int(still.sum()) >= 3:
                ratio = ratio[still]
        gain = float(np.median(ratio))
        if gain < COVER_DARK or gain > 1.0 / COVER_DARK:
            return True
        return (gain < COVER_DIM or gain > 1.0 / COVER_DIM) and moving < 0.03

    def _blank_screen(self, f: Features, layout: float) -> bool:
        """A flat frame that is a lost signal: one even field (black, blue, a test card's
        background), not the learned scene darkened and not an uneven field like a cover."""
        if layout >= DIM_LAYOUT and float(f.cell_mean.std()) >= 0.3:
            return False  # the learned layout, only darker
        cm = f.cell_mean
        even = float((np.abs(cm - float(np.median(cm))) <= BLANK_SPREAD).mean())
        return even >= BLANK_EVEN

    def _static(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """1.0 where nothing was seen moving (with a margin), at `shape`; None: all static."""
        mv = self._moving
        if mv is None:
            return None
        key = (shape[0], shape[1])
        if key in self._static_at:
            return self._static_at[key]  # once per frame and size
        keep: np.ndarray | None = None
        if cv2.countNonZero(mv):
            keep = (cv2.dilate(mv, np.ones((5, 5), np.uint8)) == 0).astype(np.float32)
            if keep.shape != key:
                keep = (
                    cv2.resize(keep, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) > 0.99
                ).astype(np.float32)
        self._static_at[key] = keep
        return keep

    def _scene_change(self, f: Features) -> float:
        """1 - structure match with the reference, relative to what clean frames scored.

        Judged at the scale (fine or coarse) where the learned view has dependable structure:
        a plain view (asphalt, a white wall) is judged on its coarse layout, where compression
        noise averages out. Pixels seen moving are left out. 0 when neither scale can tell.
        """
        ref = self.ref
        assert ref.hp is not None
        best: float | None = None
        gm = self._grain_match
        if gm is not None:
            self._struct_rel = self._coarse_rel = None
            self._measured_ncc = None
            if gm[1] < GRAIN_ENERGY:
                return self._state["scene_change"].score  # grain smoothed away: hold
            return float(min(1.5, max(0.0, 1.0 - gm[0] / GRAIN_SCALE)))
        scales = [(0, f.hp, ref.hp)]
        if ref.hp2 is not None and ref.hp2.shape == f.hp2.shape:
            scales.append((1, f.hp2, ref.hp2))
        measured = list(ref.self_ncc)
        self._struct_rel = self._coarse_rel = None
        for k, a, b in scales:
            keep = self._static(a.shape)
            m = block_ncc(a, b, keep)
            if m is None and keep is not None:
                # Motion covers all but a few blocks: the view itself changed and the motion
                # background has not learned it yet (a view moved by a quarter left the
                # judgement on hold for 5 s). The median over all blocks still tells a new view
                # (every block differs) from objects in a few blocks.
                m = block_ncc(a, b)
            if m is None:
                continue
            measured[k] = m
            own = ref.self_ncc[k]
            if k == 0:
                self._struct_rel = m / max(own, 0.35)
            elif own >= 0.35:
                self._coarse_rel = m / own
            if own < 0.35:
                continue
            rel = m / own
            best = rel if best is None else max(best, rel)
        self._measured_ncc = (measured[0], measured[1])
        if best is None:
            return self._state["scene_change"].score  # too little still to judge: hold
        return float(min(1.5, max(0.0, 1.0 - best)))

    def _rest_matches(self, f: Features, visible: np.ndarray) -> bool:
        """True when the textured cells left uncovered still have the reference structure."""
        assert self.ref.hp is not None
        judged = int((self.ref.cell_std > JUDGE_STD).sum())
        if int(visible.sum()) < max(3, judged // 5):
            return True  # mostly covered: too little left to compare
        h, w = f.hp.shape
        rest = cv2.resize(visible.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
        keep = self._static((h, w))
        if keep is not None:
            rest = rest * keep  # people walking in the visible part do not make it a new view
        own = max(0.35, self.ref.self_ncc[0])
        return ncc(f.hp * rest, self.ref.hp * rest) >= 0.5 * own

    def _frozen_seconds(self, f: Features, prev: Features | None) -> float:
        cfg = self.cfg
        if prev is None or prev.q.shape != f.q.shape:
            self._same_since, self._same_count, self._stall_since = None, 0, None
            return 0.0
        same = float(cv2.norm(f.q, prev.q, cv2.NORM_L1)) / f.q.size < cfg.identical_mad
        if same:
            if self._same_since is None:
                self._same_since = prev.ts
            self._same_count += 1
        else:
            self._same_since, self._same_count = None, 0
        stalled = f.pts is not None and prev.pts is not None and f.pts <= prev.pts
        if stalled:
            if self._stall_since is None:
                self._stall_since = prev.ts
        else:
            self._stall_since = None
        secs = 0.0
        if self._stall_since is not None:
            secs = f.ts - self._stall_since
        pixel_ok = not cfg.frozen_pixels_need_pts or f.pts is None
        if self._same_since is not None and self._same_count >= cfg.frozen_min_repeats and pixel_ok:
            secs = max(secs, f.ts - self._same_since)
        return secs

    def _motion_scores(self) -> tuple[float, float]:
        if len(self._shifts) < 3:
            return 0.0, 0.0
        d = np.array(self._shifts, np.float64)
        mags = np.hypot(d[:, 0], d[:, 1])
        total = float(mags.sum())
        # One jump (camera knocked, PTZ preset) is not shake or drift: most shifts must move.
        moving = int((mags >= self.cfg.min_shift).sum())
        if total <= 1e-9 or moving < max(3, (len(mags) + 1) // 2 + 1):
            return 0.0, 0.0
        vec = d[:, :2].sum(axis=0)
        consistency = float(np.hypot(*vec)) / total
        if consistency >= self.cfg.direction_consistency:
            speed = float(np.hypot(*vec)) / float(d[:, 2].sum())
            return 0.0, speed
        return float(np.sqrt((mags**2).mean())), 0.0

    # ---- decisions --------------------------------------------------------------------------

    def _decide(self, scores: dict[str, float], thr: dict[str, float]) -> dict[str, bool]:
        suppressed: set[str] = set()
        recent = list(self._shifts)[-2:]
        if any(np.hypot(dx, dy) >= 2 * self.cfg.min_shift for dx, dy, _ in recent):
            # The camera is moving right now: judge its view once it holds still.
            suppressed.update(("scene_change", "occlusion"))
        coarse = self._coarse_rel
        if (
            coarse is not None
            and coarse < 0.5
            and scores.get("scene_change", 0.0) >= thr["scene_change"]
        ):
            # Even the coarse layout of the structure is another one: a new view, which may
            # well be blander than the old (less sharp), not a blurred old view.
            suppressed.add("blur")
        over: dict[str, bool] = {}
        for c in FAULT_ORDER:
            raw = scores.get(c, 0.0) >= thr[c]
            o = raw and c not in suppressed
            over[c] = o
            if o or (self._state[c].active and c not in suppressed):
                suppressed.update(PRECEDENCE.get(c, ()))
        return over

    def _debounce(self, scores: dict[str, float], thr: dict[str, float], over: dict[str, bool]):
        cfg = self.cfg
        for c in FAULT_CODES:
            st = self._state[c]
            st.score, st.threshold = scores.get(c, 0.0), thr[c]
            on = cfg.on_count if c not in ("frozen", "signal_loss") else 1
            if c == "signal_loss":
                on = min(cfg.on_count, 2)
            if over[c]:
                st.on_run += 1
                st.off_run = 0
                if st.on_run >= on:
                    st.active = True
            else:
                st.on_run = 0
                st.off_run += 1
                if st.off_run >= cfg.off_count:
                    st.active = False

    def _report(self, ts: float, scores: dict[str, float]) -> QualityReport:
        active = frozenset(c for c in FAULT_CODES if self._state[c].active)
        changed = active != self._active
        self._active = active
        for c in active:
            if c in self._areas or c not in self._area_on:
                self._area_on[c] = self._areas.get(c)
        for c in list(self._area_on):
            if c not in active:
                del self._area_on[c]
        faults = [
            FaultScore(
                code=c,
                score=round(self._state[c].score, 4),
                threshold=round(self._state[c].threshold, 4),
                area=self._area_on.get(c),
            )
            for c in FAULT_ORDER
            if c in active
        ]
        return QualityReport(
            ts=ts,
            intact=not active,
            faults=faults,
            scores={k: round(v, 4) for k, v in scores.items()},
            reference_ready=self.ref.ready,
            changed=changed,
        )
