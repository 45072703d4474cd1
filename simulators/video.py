"""Labelled synthetic camera sequences: textured scenes, movers, light changes and injected faults."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.faults import FAULT_CODES

SIGNAL_LOSS_VARIANTS = ("black", "blue", "none")
FROZEN_VARIANTS = ("pixels", "pts_stalled")
LIGHT_EVENTS = ("clouds", "lights_on", "headlights", "exposure_step")


@dataclass(frozen=True)
class SynthConfig:
    """What one generated sequence looks like; everything random is drawn from `seed`."""

    width: int = 640
    height: int = 360
    fps: float = 5.0
    n_frames: int = 100
    seed: int = 0
    people_per_min: float = 20.0
    vehicles_per_min: float = 12.0
    noise_sigma: float = 2.5
    jpeg_quality: int | None = None
    night: bool = False
    light_events: tuple[str, ...] = ("clouds", "lights_on", "headlights")
    fault: str | None = None
    fault_start: int = 40
    fault_variant: str | None = None
    with_masks: bool = False

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULT_CODES:
            raise ValueError(f"unknown fault {self.fault!r}; known: {', '.join(FAULT_CODES)}")
        for ev in self.light_events:
            if ev not in LIGHT_EVENTS:
                raise ValueError(f"unknown light event {ev!r}; known: {', '.join(LIGHT_EVENTS)}")


@dataclass
class SynthFrame:
    """One generated frame with its ground truth."""

    index: int
    ts: float
    pts: float | None
    image: np.ndarray | None
    boxes: list[tuple[int, int, int, int]]
    faults: frozenset[str]
    mask: np.ndarray | None = None
    light_change: bool = False
    ids: list[int] = field(default_factory=list)


@dataclass
class _Mover:
    kind: str
    x: float
    y: float
    vx: float
    vy: float
    patch: np.ndarray
    alpha: np.ndarray
    headlights: bool = False
    id: int = 0


@dataclass
class _State:
    ox: float
    oy: float
    movers: list[_Mover] = field(default_factory=list)
    next_id: int = 1


def _octave_noise(rng: np.random.Generator, h: int, w: int, cells: int, octaves: int) -> np.ndarray:
    """Smooth fractal noise in [-1, 1] of shape (h, w), float32."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    c = cells
    for _ in range(octaves):
        ch, cw = max(2, int(c * h / max(h, w)) + 1), max(2, c + 1)
        small = rng.uniform(-1, 1, (ch, cw)).astype(np.float32)
        out += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.55
        c *= 2
    return np.clip(out / total, -1, 1)


def _texture(
    rng: np.random.Generator, h: int, w: int, base: tuple[int, int, int], var: float, cells: int
) -> np.ndarray:
    """A colour patch with fractal luminance texture around a base BGR colour."""
    n = _octave_noise(rng, h, w, cells, 4)
    fine = rng.normal(0, 0.25, (h, w)).astype(np.float32)
    lum = 1.0 + var * (n + fine * 0.5)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        img[..., c] = base[c] * lum
    return img


def _render_world(rng: np.random.Generator, vw: int, vh: int) -> np.ndarray:
    """A static street panorama three views wide and two views tall (BGR uint8)."""
    ww, wh = vw * 3, vh * 2
    s = vh / 360.0
    img = np.zeros((wh, ww, 3), np.float32)
    horizon = int(0.95 * vh)
    # Sky with clouds.
    sky = _texture(rng, horizon, ww, (215, 185, 150), 0.12, 6)
    grad = np.linspace(0.85, 1.1, horizon, dtype=np.float32)[:, None, None]
    img[:horizon] = sky * grad
    # Ground: pavement then road then grass/pavement.
    road_top, road_bot = int(1.1 * vh), int(1.42 * vh)
    img[horizon:road_top] = _texture(rng, road_top - horizon, ww, (150, 155, 160), 0.18, 60)
    img[road_top:road_bot] = _texture(rng, road_bot - road_top, ww, (85, 88, 90), 0.15, 120)
    img[road_bot:] = _texture(rng, wh - road_bot, ww, (70, 120, 80), 0.3, 80)
    # Paving joints.
    step = max(6, int(24 * s))
    for x in range(0, ww, step):
        cv2.line(img, (x, horizon), (x, road_top), (120, 125, 128), max(1, int(s)))
    # Lane markings and kerbs.
    cv2.rectangle(img, (0, road_top), (ww, road_top + max(2, int(4 * s))), (200, 200, 200), -1)
    cv2.rectangle(img, (0, road_bot - max(2, int(4 * s))), (ww, road_bot), (200, 200, 200), -1)
    mid = (road_top + road_bot) // 2
    dash, gap = int(40 * s), int(30 * s)
    for x in range(0, ww, dash + gap):
        cv2.rectangle(
            img,
            (x, mid - max(1, int(2 * s))),
            (x + dash, mid + max(1, int(2 * s))),
            (230, 230, 230),
            -1,
        )
    # Buildings along the horizon with windows.
    x = 0
    while x < ww:
        bw = int(rng.uniform(60, 160) * s)
        bh = int(rng.uniform(0.25, 0.75) * vh)
        top = horizon - bh
        colour = tuple(float(c) for c in rng.uniform(70, 200, 3))
        img[top:horizon, x : x + bw] = _texture(rng, bh, min(bw, ww - x), colour, 0.1, 8)
        cv2.rectangle(img, (x, top), (x + bw, horizon), (40, 40, 40), max(1, int(s)))
        wx, wy = max(4, int(10 * s)), max(4, int(14 * s))
        lit = rng.uniform(0.4, 1.0)
        for yy in range(top + wy, horizon - wy, wy * 2):
            for xx in range(x + wx, x + bw - wx, wx * 2):
                c = (60, 60, 50) if rng.random() < lit else (150, 210, 235)
                cv2.rectangle(img, (xx, yy), (xx + wx, yy + wy), c, -1)
        x += bw + int(rng.uniform(0, 20) * s)
    # Trees and poles on the pavement.
    for _ in range(int(ww / (90 * s))):
        tx = int(rng.uniform(0, ww))
        ty = int(rng.uniform(horizon - 0.05 * vh, road_top - 0.02 * vh))
        r = int(rng.uniform(18, 40) * s)
        cv2.rectangle(
            img, (tx - max(2, r // 8), ty - r), (tx + max(2, r // 8), ty + r // 2), (40, 60, 80), -1
        )
        crown = _texture(rng, 2 * r, 2 * r, (50, 130, 60), 0.35, 10)
        circ = np.zeros((2 * r, 2 * r), np.uint8)
        cv2.circle(circ, (r, r), r, 1, -1)
        y0, x0 = ty - 2 * r, tx - r
        y1, x1 = max(0, y0), max(0, x0)
        y2, x2 = min(wh, y0 + 2 * r), min(ww, x0 + 2 * r)
        if y2 > y1 and x2 > x1:
            sub = circ[y1 - y0 : y2 - y0, x1 - x0 : x2 - x0].astype(bool)
            img[y1:y2, x1:x2][sub] = crown[y1 - y0 : y2 - y0, x1 - x0 : x2 - x0][sub]
    return np.clip(img, 0, 255).astype(np.uint8)


def _bounce(x: float, lo: float, hi: float) -> float:
    """Reflect x into [lo, hi] (a camera panning back and forth between its limits)."""
    span = hi - lo
    t = (x - lo) % (2 * span)
    return lo + (t if t <= span else 2 * span - t)


def _person(rng: np.random.Generator, h: int) -> tuple[np.ndarray, np.ndarray]:
    w = max(3, int(h * 0.38))
    alpha = np.zeros((h, w), np.uint8)
    head = max(1, h // 9)
    cv2.circle(alpha, (w // 2, head), head, 1, -1)
    cv2.ellipse(
        alpha, (w // 2, int(h * 0.42)), (max(1, w // 2 - 1), int(h * 0.25)), 0, 0, 360, 1, -1
    )
    cv2.rectangle(alpha, (w // 4, int(h * 0.6)), (3 * w // 4, h - 1), 1, -1)
    shirt = tuple(float(c) for c in rng.uniform(20, 240, 3))
    patch = _texture(rng, h, w, shirt, 0.2, 3)
    patch[int(h * 0.6) :] = _texture(
        rng, h - int(h * 0.6), w, tuple(rng.uniform(20, 120, 3)), 0.2, 3
    )
    patch[: 2 * head] = _texture(rng, 2 * head, w, (90, 130, 190), 0.1, 2)
    return np.clip(patch, 0, 255).astype(np.uint8), alpha


def _vehicle(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    alpha = np.zeros((h, w), np.uint8)
    r = max(1, h // 5)
    cv2.rectangle(alpha, (0, h // 3), (w - 1, h - r), 1, -1)
    cv2.rectangle(alpha, (w // 5, 0), (4 * w // 5, h // 3 + 1), 1, -1)
    for cx in (w // 5, 4 * w // 5):
        cv2.circle(alpha, (cx, h - r), r, 1, -1)
    body = tuple(float(c) for c in rng.uniform(15, 235, 3))
    patch = _texture(rng, h, w, body, 0.08, 4)
    cv2.rectangle(patch, (w // 5 + 2, 2), (4 * w // 5 - 2, h // 3), (60, 50, 40), -1)
    for cx in (w // 5, 4 * w // 5):
        cv2.circle(patch, (cx, h - r), r, (20, 20, 20), -1)
    return np.clip(patch, 0, 255).astype(np.uint8), alpha


def fault_params(r: np.random.Generator, w: int, h: int) -> dict[str, float]:
    """Random strengths of every fault for a view w x h (one draw per sequence)."""
    return {
        "blur_sigma": r.uniform(4.0, 9.0) * w / 1920 * 1.5 + 1.0,
        "dark_gain": r.uniform(0.06, 0.16),
        "bright_gain": r.uniform(2.4, 3.5),
        "bright_offset": r.uniform(60, 120),
        "cast_channel": float(r.integers(0, 3)),
        "cast_strength": r.uniform(0.45, 0.7),
        "snow_sigma": r.uniform(28, 45),
        "snow_salt": r.uniform(0.03, 0.08),
        "stripe_amp": r.uniform(18, 35),
        "stripe_period": r.uniform(0.04, 0.15),
        "stripe_angle": float(r.choice([0.0, 90.0, r.uniform(10, 40)])),
        "stripe_speed": r.uniform(0.05, 0.3),
        "occl_cover": r.uniform(0.45, 1.0),
        "occl_level": r.uniform(10, 70),
        "occl_side": float(r.integers(0, 4)),
        "scene_dx": r.choice([-1.0, 1.0]) * r.uniform(0.45, 0.9) * w,
        "scene_dy": r.uniform(-0.3, 0.3) * h,
        "shake_amp": r.uniform(0.02, 0.05) * w,
        "drift_v": r.choice([-1.0, 1.0]) * r.uniform(0.01, 0.03) * w,
        "drift_vy": r.uniform(-0.005, 0.005) * h,
    }


def apply_fault(
    img: np.ndarray,
    f: str,
    variant: str,
    p: dict[str, float],
    k: int,
    rng: np.random.Generator,
    cache: dict[str, np.ndarray],
) -> np.ndarray | None:
    """The picture-level effect of fault `f` on one BGR frame, k frames after it started.

    Covers the faults that change pixels (signal loss, blur, dark, bright, cast, snow, stripes,
    cover); view faults (moved, shake, drift) and frozen frames are made by the caller.
    None means "no frame at all" (signal loss, variant "none").
    """
    h, w = img.shape[:2]
    if f == "signal_loss":
        if variant == "none":
            return None
        if variant == "blue":
            out = np.empty_like(img)
            out[:] = (200, 40, 20)
            cv2.putText(
                out,
                "NO SIGNAL",
                (w // 3, h // 2),
                cv2.FONT_HERSHEY_SIMPLEX,
                h / 400,
                (255, 255, 255),
                max(1, h // 200),
            )
            return out
        return np.full_like(img, 2)
    if f == "blur":
        return cv2.GaussianBlur(img, (0, 0), p["blur_sigma"])
    if f == "too_dark":
        return cv2.convertScaleAbs(img, alpha=p["dark_gain"])
    if f == "too_bright":
        return cv2.convertScaleAbs(img, alpha=p["bright_gain"], beta=p["bright_offset"])
    if f == "colour_cast":
        c = int(p["cast_channel"])
        out = img.astype(np.float32)
        for ch in range(3):
            if ch != c:
                out[..., ch] *= 1.0 - p["cast_strength"]
        out[..., c] = out[..., c] * (1.0 + p["cast_strength"] * 0.5) + 30
        return np.clip(out, 0, 255).astype(np.uint8)
    if f == "snow_noise":
        n = rng.normal(0, p["snow_sigma"], (h, w)).astype(np.float32)
        out = img.astype(np.float32) + n[..., None]
        salt = rng.random((h, w))
        out[salt < p["snow_salt"] / 2] = 0
        out[salt > 1 - p["snow_salt"] / 2] = 255
        return np.clip(out, 0, 255).astype(np.uint8)
    if f == "stripes":
        th = math.radians(p["stripe_angle"])
        period = p["stripe_period"] * h
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = 2 * math.pi * (k * p["stripe_speed"])
        s = np.sin((yy * math.cos(th) + xx * math.sin(th)) * 2 * math.pi / period + phase)
        out = img.astype(np.float32) + (p["stripe_amp"] * s)[..., None]
        return np.clip(out, 0, 255).astype(np.uint8)
    if f == "occlusion":
        cover = p["occl_cover"]
        m = np.zeros((h, w), np.uint8)
        side = int(p["occl_side"])
        if cover > 0.95:
            m[:] = 1
        elif side == 0:
            cv2.ellipse(m, (0, h // 2), (int(2 * cover * w), int(h * 0.9)), 0, 0, 360, 1, -1)
        elif side == 1:
            cv2.ellipse(m, (w, h // 2), (int(2 * cover * w), int(h * 0.9)), 0, 0, 360, 1, -1)
        elif side == 2:
            cv2.ellipse(m, (w // 2, h), (int(w * 0.9), int(2 * cover * h)), 0, 0, 360, 1, -1)
        else:
            cv2.circle(m, (w // 2, h // 2), int(math.sqrt(cover * w * h / math.pi)), 1, -1)
        lvl = p["occl_level"]
        tex = cache.get("occlusion")
        if tex is None or tex.shape[:2] != (h, w):
            tex = _texture(rng, h, w, (lvl, lvl * 1.05, lvl * 1.1), 0.08, 3)
            cache["occlusion"] = tex
        out = img.copy()
        sel = m.astype(bool)
        out[sel] = np.clip(tex[sel], 0, 255).astype(np.uint8)
        return out
    return img


class SynthSequence:
    """Iterates labelled frames of one configured sequence, deterministically by seed."""

    def __init__(self, cfg: SynthConfig) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        rng = self.rng
        w, h = cfg.width, cfg.height
        self.world = _render_world(rng, w, h)
        self.noise = (
            rng.normal(0, 1, (h + 64, w + 64)).astype(np.float32) * cfg.noise_sigma
        ).astype(np.int16)
        self._noise3: np.ndarray | None = None
        self.state = _State(ox=float(w), oy=0.5 * h)
        self.lane_speed = (rng.uniform(0.02, 0.05), rng.uniform(0.02, 0.05))
        self.base_gain = 0.62 if cfg.night else 1.0
        self.variant = cfg.fault_variant or self._pick_variant()
        self.params = self._fault_params()
        self.events = self._plan_light_events()
        self._frozen: np.ndarray | None = None
        self._frozen_pts: float | None = None
        self._cache: dict[str, np.ndarray] = {}

    # ---- planning -------------------------------------------------------------------------

    def _pick_variant(self) -> str:
        if self.cfg.fault == "signal_loss":
            return str(self.rng.choice(SIGNAL_LOSS_VARIANTS))
        if self.cfg.fault == "frozen":
            return str(self.rng.choice(FROZEN_VARIANTS))
        return "default"

    def _fault_params(self) -> dict[str, float]:
        return fault_params(self.rng, self.cfg.width, self.cfg.height)

    def _plan_light_events(self) -> dict[str, float]:
        r, n = self.rng, self.cfg.n_frames
        ev: dict[str, float] = {}
        if "clouds" in self.cfg.light_events:
            ev["cloud_period"] = r.uniform(8, 30) * self.cfg.fps
            ev["cloud_amp"] = r.uniform(0.08, 0.22)
            ev["cloud_phase"] = r.uniform(0, 2 * math.pi)
        if "lights_on" in self.cfg.light_events:
            ev["lights_on_at"] = float(r.integers(n // 5, max(n // 5 + 1, n - 5)))
            ev["lights_on_gain"] = r.uniform(0.5, 1.0) if self.cfg.night else r.uniform(0.2, 0.4)
            ev["lights_on_x"] = r.uniform(0.2, 0.8)
            ev["lights_on_r"] = r.uniform(0.25, 0.6)
        if "exposure_step" in self.cfg.light_events:
            ev["exposure_at"] = float(r.integers(n // 5, max(n // 5 + 1, n - 5)))
            ev["exposure_gain"] = float(r.choice([0.7, 1.35] if self.cfg.night else [0.75, 1.2]))
        return ev

    # ---- per frame ------------------------------------------------------------------------

    def _spawn(self, i: int) -> None:
        cfg, r, st = self.cfg, self.rng, self.state
        w, h = cfg.width, cfg.height
        per_frame = 1.0 / (60.0 * cfg.fps)
        x_left, x_right = st.ox - 0.15 * w, st.ox + 1.15 * w
        if r.random() < cfg.people_per_min * per_frame:
            ph = int(r.uniform(0.11, 0.2) * h)
            patch, alpha = _person(r, ph)
            speed = r.uniform(0.004, 0.012) * w * 5.0 / cfg.fps
            if r.random() < 0.3:  # crosses the road
                x = r.uniform(st.ox + 0.1 * w, st.ox + 0.9 * w)
                st.movers.append(
                    _Mover(
                        "person",
                        x,
                        0.92 * h,
                        r.uniform(-0.3, 0.3) * speed,
                        speed * 0.8,
                        patch,
                        alpha,
                    )
                )
            else:
                go_right = r.random() < 0.5
                y = r.uniform(0.88, 1.02) * h
                x = x_left if go_right else x_right
                st.movers.append(
                    _Mover("person", x, y, speed if go_right else -speed, 0.0, patch, alpha)
                )
        if r.random() < cfg.vehicles_per_min * per_frame:
            vh_ = int(r.uniform(0.12, 0.2) * h)
            vw_ = int(vh_ * r.uniform(1.8, 2.8))
            patch, alpha = _vehicle(r, vh_, vw_)
            go_right = r.random() < 0.5
            lane_y = (1.2 if go_right else 1.33) * h - vh_
            # One speed per lane and a gap to the last car: cars in a lane never overlap.
            speed = self.lane_speed[0 if go_right else 1] * w * 5.0 / cfg.fps
            x = x_left - vw_ if go_right else x_right
            same = [m for m in st.movers if m.kind == "vehicle" and (m.vx > 0) == go_right]
            if any(abs(m.x - x) < 1.5 * max(vw_, m.alpha.shape[1]) for m in same):
                return
            lights = "headlights" in cfg.light_events and (cfg.night or r.random() < 0.3)
            st.movers.append(
                _Mover(
                    "vehicle",
                    x,
                    lane_y,
                    speed if go_right else -speed,
                    0.0,
                    patch,
                    alpha,
                    headlights=lights,
                )
            )
        for m in st.movers:
            if m.id == 0:
                m.id, st.next_id = st.next_id, st.next_id + 1
        _ = i

    def _gain(self, i: int) -> tuple[float, np.ndarray | None, bool]:
        """Global gain, optional spatial gain field (view-sized), and whether a step happened."""
        ev, w, h = self.events, self.cfg.width, self.cfg.height
        g = self.base_gain
        step = False
        if "cloud_period" in ev:
            g *= 1.0 - ev["cloud_amp"] * (
                0.5 + 0.5 * math.sin(2 * math.pi * i / ev["cloud_period"] + ev["cloud_phase"])
            )
        if "exposure_at" in ev and i >= ev["exposure_at"]:
            g *= ev["exposure_gain"]
            step = step or i == int(ev["exposure_at"])
        field_: np.ndarray | None = None
        if "lights_on_at" in ev and i >= ev["lights_on_at"]:
            step = step or i == int(ev["lights_on_at"])
            field_ = self._pool(
                ev["lights_on_x"] * w, 0.3 * h, ev["lights_on_r"] * w, ev["lights_on_gain"]
            )
        return g, field_, step

    def _pool(self, cx: float, cy: float, r: float, gain: float) -> np.ndarray:
        h, w = self.cfg.height, self.cfg.width
        key = (int(cx), int(cy), int(r), round(gain, 3))
        cache = getattr(self, "_pool_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d2 = ((xx - cx) ** 2 + ((yy - cy) * 1.5) ** 2) / (r * r)
        f = 1.0 + gain * np.exp(-d2).astype(np.float32)
        self._pool_cache = (key, f)
        return f

    def _view_offset(self, i: int) -> tuple[int, int]:
        cfg, st, p = self.cfg, self.state, self.params
        w, h = cfg.width, cfg.height
        ox, oy = float(w), 0.5 * h
        k = i - cfg.fault_start
        if cfg.fault == "scene_change" and k >= 0:
            ox, oy = ox + p["scene_dx"], oy + p["scene_dy"]
        elif cfg.fault == "shake" and k >= 0:
            a = p["shake_amp"]
            ox += self.rng.uniform(-a, a)
            oy += self.rng.uniform(-a, a) * 0.6
        elif cfg.fault == "ptz_drift" and k >= 0:
            # Pan (and a little tilt) from the normal view, bouncing at the panorama's edges.
            ox = _bounce(ox + p["drift_v"] * (k + 1), 0.0, 2.0 * w)
            oy = _bounce(oy + p["drift_vy"] * (k + 1), 0.0, 1.0 * h)
        ww, wh = self.world.shape[1], self.world.shape[0]
        ox = min(max(0.0, ox), ww - w)
        oy = min(max(0.0, oy), wh - h)
        st.ox, st.oy = (
            ox if cfg.fault != "shake" else float(w),
            oy if cfg.fault != "shake" else 0.5 * h,
        )
        return int(round(ox)), int(round(oy))

    def _composite(
        self, view: np.ndarray, ox: int, oy: int, mask: np.ndarray | None
    ) -> list[tuple[int, int, int, int]]:
        h, w = view.shape[:2]
        boxes: list[tuple[int, int, int, int]] = []
        self._ids: list[int] = []
        for m in self.state.movers:
            ph, pw = m.alpha.shape
            x0, y0 = int(round(m.x)) - ox, int(round(m.y)) - oy
            x1, y1 = max(0, x0), max(0, y0)
            x2, y2 = min(w, x0 + pw), min(h, y0 + ph)
            if x2 <= x1 or y2 <= y1:
                continue
            a = m.alpha[y1 - y0 : y2 - y0, x1 - x0 : x2 - x0].astype(bool)
            xs = np.flatnonzero(a.any(axis=0))  # the columns and rows the mover covers
            if not len(xs):
                continue
            np.copyto(
                view[y1:y2, x1:x2],
                m.patch[y1 - y0 : y2 - y0, x1 - x0 : x2 - x0],
                where=a[..., None],
            )
            if mask is not None:
                mask[y1:y2, x1:x2][a] = 1
            ys = np.flatnonzero(a.any(axis=1))
            self._ids.append(m.id)
            boxes.append(
                (x1 + int(xs[0]), y1 + int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1))
            )
        return boxes

    def _headlights(self, ox: int, oy: int) -> np.ndarray | None:
        h, w = self.cfg.height, self.cfg.width
        beams = [m for m in self.state.movers if m.headlights]
        if not beams:
            return None
        f = np.zeros((h, w), np.float32)
        for m in beams:
            ph, pw = m.alpha.shape
            front = m.x + pw if m.vx > 0 else m.x
            length = 1.3 * pw
            cx = front - ox + (length / 2 if m.vx > 0 else -length / 2)
            cy = m.y - oy + 0.8 * ph
            cv2.ellipse(
                f, (int(cx), int(cy)), (int(length / 2), max(2, int(ph * 0.35))), 0, 0, 360, 0.9, -1
            )
        k = max(3, int(0.03 * w) | 1)
        return cv2.GaussianBlur(f, (k, k), 0)

    def _apply_fault(self, img: np.ndarray, i: int) -> np.ndarray | None:
        cfg = self.cfg
        if cfg.fault is None:
            return img
        k = i - cfg.fault_start
        return apply_fault(img, cfg.fault, self.variant, self.params, k, self.rng, self._cache)

    def _add_noise(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        dy, dx = self.rng.integers(0, 64, 2)
        if img.ndim == 3 and img.shape[2] == 3:
            # One saturating add in OpenCV: the same pixels as clip(img + n, 0, 255), a quarter
            # of numpy's time (an int16 copy, an add, a clip and a cast per frame).
            if self._noise3 is None:
                self._noise3 = np.repeat(self.noise[..., None], 3, axis=2)
            return cv2.add(img, self._noise3[dy : dy + h, dx : dx + w], dtype=cv2.CV_8U)
        n = self.noise[dy : dy + h, dx : dx + w]
        out = img.astype(np.int16)
        out += n[..., None]
        return np.clip(out, 0, 255).astype(np.uint8)

    def __iter__(self) -> Iterator[SynthFrame]:
        cfg = self.cfg
        for i in range(cfg.n_frames):
            yield self.frame(i)

    def frame(self, i: int) -> SynthFrame:
        """Render frame i; frames must be requested in order."""
        cfg, st = self.cfg, self.state
        ts = i / cfg.fps
        faulty = cfg.fault is not None and i >= cfg.fault_start
        faults = frozenset({cfg.fault}) if faulty and cfg.fault else frozenset()
        self._spawn(i)
        ox, oy = self._view_offset(i)
        for m in st.movers:
            m.x += m.vx
            m.y += m.vy
        w, h = cfg.width, cfg.height
        st.movers = [
            m
            for m in st.movers
            if st.ox - 0.5 * w < m.x < st.ox + 1.5 * w and m.y < st.oy + 1.2 * h
        ]
        if faulty and cfg.fault == "frozen" and self._frozen is not None:
            pts = self._frozen_pts if self.variant == "pts_stalled" else ts
            return SynthFrame(
                i,
                ts,
                pts,
                self._frozen.copy(),
                [],
                faults,
                np.zeros((h, w), np.uint8) if cfg.with_masks else None,
            )
        view = self.world[oy : oy + h, ox : ox + w].copy()
        mask = np.zeros((h, w), np.uint8) if cfg.with_masks else None
        boxes = self._composite(view, ox, oy, mask)
        g, field_, step = self._gain(i)
        beams = self._headlights(ox, oy)
        if field_ is not None or beams is not None:
            gf = field_ if field_ is not None else np.ones((h, w), np.float32)
            if beams is not None:
                gf = gf + beams
            lit = view.astype(np.float32)
            lit *= (gf * g)[..., None]
            view = np.clip(lit, 0, 255, out=lit).astype(np.uint8)
        elif abs(g - 1.0) > 1e-3:
            view = cv2.convertScaleAbs(view, alpha=g)
        img: np.ndarray | None = view
        if faulty:
            img = self._apply_fault(view, i)
            boxes = [] if cfg.fault in ("signal_loss", "occlusion", "too_dark") else boxes
        if img is not None and not (faulty and cfg.fault == "signal_loss"):
            img = self._add_noise(img)
        if img is not None and cfg.jpeg_quality:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img
        if cfg.fault == "frozen" and i == cfg.fault_start - 1:
            self._frozen, self._frozen_pts = img.copy() if img is not None else None, ts
        ids = list(self._ids) if boxes else []
        return SynthFrame(i, ts, ts, img, boxes, faults, mask, light_change=step, ids=ids)


def generate(cfg: SynthConfig) -> Iterator[SynthFrame]:
    """The labelled frames of one sequence, in order."""
    return iter(SynthSequence(cfg))
