"""JPEG snapshots for simulated cameras: a synthetic textured scene, with injectable picture faults."""

from __future__ import annotations

import math

import cv2
import numpy as np

from simulators.fleet_model import SNAPSHOT_FAULTS

N_SCENES = 12
JPEG_QUALITY = 80


def _noise_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.random((cells, max(2, cells * w // h))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def render_scene(seed: int, width: int, height: int) -> np.ndarray:
    """A street-like scene: sky, textured buildings, a road with lane marks, some foliage (BGR)."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    img = np.zeros((h, w, 3), np.float32)
    horizon = int(h * rng.uniform(0.3, 0.45))
    sky = np.array([rng.uniform(170, 230), rng.uniform(150, 200), rng.uniform(110, 160)])
    img[:horizon] = sky * (0.85 + 0.15 * np.linspace(0, 1, horizon))[:, None, None]
    ground = np.array([rng.uniform(70, 110)] * 3) + rng.uniform(-10, 10, 3)
    img[horizon:] = ground
    texture = _noise_field(rng, h, w, 24) * 0.6 + _noise_field(rng, h, w, 96) * 0.4
    x = 0
    while x < w:
        bw = int(rng.uniform(0.08, 0.22) * w)
        top = int(horizon - rng.uniform(0.05, 0.3) * h)
        colour = rng.uniform(60, 200, 3)
        img[max(top, 0) : horizon + int(0.1 * h), x : x + bw] = colour
        for wy in range(max(top, 0) + 4, horizon, 9):  # windows
            for wx in range(x + 3, min(x + bw - 4, w - 4), 8):
                img[wy : wy + 4, wx : wx + 4] = colour * rng.uniform(0.3, 0.7)
        x += bw + int(rng.uniform(0, 0.05) * w)
    road_top = horizon + int(0.12 * h)
    pts = np.array([[w * 0.45, road_top], [w * 0.55, road_top], [w, h], [0, h]], np.int32)
    cv2.fillPoly(img, [pts], (60, 60, 62))
    for k in range(6):
        y0 = road_top + (h - road_top) * k / 6
        cv2.line(
            img, (w // 2, int(y0)), (w // 2, int(y0 + (h - road_top) / 14)), (220, 220, 220), 2
        )
    for _ in range(int(rng.integers(2, 6))):  # trees
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(horizon, h * 0.8))
        r = int(rng.uniform(0.03, 0.08) * w)
        cv2.circle(img, (cx, cy), r, (40, rng.uniform(90, 140), 50), -1)
    img *= (0.75 + 0.5 * texture)[:, :, None]
    return np.clip(img, 0, 255).astype(np.uint8)


class SnapshotMaker:
    """Makes each camera's JPEGs: its own view of one of a few scenes, daylight, a mover, noise."""

    def __init__(self, seed: int, size: tuple[int, int] = (320, 180)) -> None:
        self.width, self.height = size
        self.seed = seed
        # Scenes are rendered larger than the frame so each camera gets its own crop (its view),
        # and a moved camera gets another part of the scene.
        self.scenes = [
            render_scene(seed * 1000 + k, int(self.width * 1.6), int(self.height * 1.6))
            for k in range(N_SCENES)
        ]
        self._frozen: dict[int, bytes] = {}
        # sensor noise: a small bank of non-negative noise frames, added and subtracted in pairs
        rng = np.random.default_rng(seed)
        self._noise = [
            np.clip(rng.normal(0, 2.5, (self.height, self.width, 3)), 0, 255).astype(np.uint8)
            for _ in range(8)
        ]

    def _view(self, camera: int, moved: bool) -> np.ndarray:
        scene = self.scenes[(camera * 7 + (5 if moved else 0)) % N_SCENES]
        sh, sw = scene.shape[:2]
        span_x, span_y = sw - self.width, sh - self.height
        ox = (camera * 7919) % (span_x + 1)
        oy = (camera * 104_729) % (span_y + 1)
        if moved:
            ox, oy = span_x - ox, span_y - oy
        return scene[oy : oy + self.height, ox : ox + self.width]

    def frame(self, camera: int, t_sim: float, fault: str | None = None) -> np.ndarray:
        """The BGR picture camera `camera` sees at simulated time t (UTC epoch seconds)."""
        hour = ((t_sim + 8 * 3600) % 86_400) / 3600.0  # China Standard Time
        daylight = 0.45 + 0.55 * max(0.0, math.sin(math.pi * (hour - 6.0) / 13.0))
        # uint8 all the way for the common, healthy picture: ~10x cheaper than float maths
        img = cv2.convertScaleAbs(self._view(camera, moved=fault == "scene_change"), alpha=daylight)
        key = (camera * 2_654_435_761 + int(t_sim)) & 0xFFFFFFFF
        # a person or car somewhere on the road
        x = int((0.1 + 0.8 * ((key >> 3) % 1000) / 1000) * self.width)
        y = int((0.6 + 0.3 * ((key >> 13) % 1000) / 1000) * self.height)
        colour = (key % 211 + 20, (key >> 8) % 211 + 20, (key >> 16) % 211 + 20)
        cv2.rectangle(img, (x, y - 18), (x + 10, y), colour, -1)
        bank = len(self._noise)
        img = cv2.add(img, self._noise[key % bank])
        img = cv2.subtract(img, self._noise[(key >> 7) % bank])
        if fault is None or fault in ("frozen", "scene_change"):
            return img
        rng = np.random.default_rng(key)
        out = apply_fault(img.astype(np.float32), fault, rng)
        return np.clip(out, 0, 255).astype(np.uint8)

    def jpeg(self, camera: int, t_sim: float, fault: str | None = None) -> bytes:
        """The JPEG bytes of one snapshot; a frozen camera repeats its first faulty picture."""
        if fault == "frozen" and camera in self._frozen:
            return self._frozen[camera]
        ok, buf = cv2.imencode(
            ".jpg", self.frame(camera, t_sim, fault), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:  # pragma: no cover - imencode only fails on invalid arrays
            raise RuntimeError("cv2.imencode failed on a synthetic frame")
        data = buf.tobytes()
        if fault == "frozen":
            self._frozen[camera] = data
        return data


def apply_fault(img: np.ndarray, fault: str, rng: np.random.Generator) -> np.ndarray:
    """Inject one picture fault into a float32 BGR frame (values 0-255)."""
    h, w = img.shape[:2]
    if fault == "occlusion":  # lens covered: a dark cloth over most of the view
        cover = int(h * rng.uniform(0.7, 1.0))
        img[:cover] = rng.uniform(15, 45) + rng.normal(0, 2, (cover, w, 1))
    elif fault == "blur":
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=max(4.0, w / 60))
    elif fault == "too_dark":
        img = img * 0.08
    elif fault == "too_bright":
        img = img * 2.6 + 90
    elif fault == "colour_cast":
        channel = int(rng.integers(0, 3))
        img = img * 0.55
        img[:, :, channel] = img[:, :, channel] * 1.8 + 70
    elif fault == "snow_noise":
        img = img + rng.normal(0, 45, img.shape)
        salt = rng.random((h, w)) < 0.05
        img[salt] = 255
    elif fault == "stripes":
        period = max(4.0, h / rng.uniform(8, 20))
        rows = 40 * np.sin(2 * np.pi * np.arange(h) / period)
        img = img + rows[:, None, None]
    elif fault in ("frozen", "scene_change"):
        pass  # frozen repeats bytes; scene_change is a different view (see SnapshotMaker)
    else:
        raise ValueError(f"fault: {fault!r} is not one of {', '.join(SNAPSHOT_FAULTS)}")
    return img
