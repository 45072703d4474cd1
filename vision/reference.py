"""A camera's own reference picture statistics: learned automatically, adapted slowly, relearned on approval.

The reference holds what "normal" looks like for one camera: its structure (high-passed small
image), sharpness relative to contrast, noise level, colour balance, per-cell texture and its
spectrum. It is learned from the first `learn_frames` plausible frames (not flat, not too dark
or bright), then follows slow scene changes (daylight, seasons) only while the camera is
intact, and is thrown away and relearned when an operator approves a change of view.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.features import Features, blocks


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two zero-mean-ish structure images (0 if flat)."""
    den = float(np.sqrt(float((a * a).sum()) * float((b * b).sum())))
    return float((a * b).sum()) / den if den > 1e-6 else 0.0


MIN_STRUCTURE = 2.0  # RMS grey levels of structure a block needs to be judged
JUDGE_STD = 5.0  # a cell needs this much learned texture (grey levels) to be judged for a cover
MIN_JUDGED = 10  # ... and a view needs this many such cells, else it is a plain view
GRAIN_KERNEL = (5, 5)


def grain(q: np.ndarray) -> np.ndarray:
    """The fine grain of a point-sampled luma image (q minus its 5x5 local mean, float32):
    the specks of asphalt or a wall that still register where a plain view has no structure
    at the small image's scale."""
    f = q.astype(np.float32)
    return f - cv2.blur(f, GRAIN_KERNEL)


def grain_register(
    a: np.ndarray, b: np.ndarray, keep: np.ndarray | None = None, r: int = 16
) -> tuple[float, float, float]:
    """(dx, dy, peak NCC): where grain image a's content lies in grain image b, searched
    within r pixels each way (a's centre crop matched over b, what moves in b blanked by
    `keep`). A peak near 0 means b shows another picture (or none) at every nearby offset."""
    h, w = a.shape
    if b.shape != a.shape or h <= 2 * r + 8 or w <= 2 * r + 8:
        return 0.0, 0.0, 0.0
    img = b if keep is None or keep.shape != b.shape else b * keep
    tpl = np.ascontiguousarray(a[r : h - r, r : w - r])
    res = cv2.matchTemplate(np.ascontiguousarray(img, np.float32), tpl, cv2.TM_CCOEFF_NORMED)
    _, peak, _, loc = cv2.minMaxLoc(res)
    x, y = loc
    dx, dy = float(x), float(y)
    # Sub-pixel: a parabola through the peak and its neighbours, each way.
    if 0 < x < res.shape[1] - 1:
        y0, y1, y2 = float(res[y, x - 1]), float(peak), float(res[y, x + 1])
        den = y0 - 2 * y1 + y2
        if den < 0:
            dx += 0.5 * (y0 - y2) / den
    if 0 < y < res.shape[0] - 1:
        y0, y1, y2 = float(res[y - 1, x]), float(peak), float(res[y + 1, x])
        den = y0 - 2 * y1 + y2
        if den < 0:
            dy += 0.5 * (y0 - y2) / den
    return dx - r, dy - r, float(peak)


def masked_ncc(a: np.ndarray, b: np.ndarray, keep: np.ndarray | None) -> tuple[float, float]:
    """(NCC of a and b where `keep` is 1, RMS of a there / RMS of b there)."""
    if keep is not None:
        a, b = a * keep, b * keep
    aa, bb = float(cv2.sumElems(cv2.multiply(a, a))[0]), float(cv2.sumElems(cv2.multiply(b, b))[0])
    if aa <= 1e-6 or bb <= 1e-6:
        return 0.0, 0.0
    ab = float(cv2.sumElems(cv2.multiply(a, b))[0])
    return ab / float(np.sqrt(aa * bb)), float(np.sqrt(aa / bb))


def block_ncc(a: np.ndarray, b: np.ndarray, keep: np.ndarray | None = None) -> float | None:
    """Median over a 4x3 grid of the blocks' NCC: a car or a crowd in a few blocks does not
    move it, a changed view moves every block. Blocks mostly masked out (`keep` 0) or flat in
    both pictures are skipped; None when fewer than 4 blocks are left."""
    pb = blocks(b, 3, 4)
    use = (pb * pb).mean(axis=2) >= MIN_STRUCTURE**2  # plain in the learned view: skip
    pa = blocks(a, 3, 4)
    if keep is not None:
        k = blocks(keep, 3, 4)
        use &= k.mean(axis=2) >= 0.5
        pa, pb = pa * k, pb * k
    if int(use.sum()) < 4:
        return None
    pa, pb = pa[use], pb[use]
    num = (pa * pb).sum(axis=1)
    den = np.sqrt((pa * pa).sum(axis=1) * (pb * pb).sum(axis=1))
    vals = np.where(den > 1e-6, num / np.maximum(den, 1e-12), 0.0)
    return float(np.median(vals))


FORMAT_VERSION = 3


def _half(a: np.ndarray | None) -> np.ndarray | None:
    """float16 for storage (the statistics need no more precision; halves the blob)."""
    return None if a is None else np.clip(a, -60000, 60000).astype(np.float16)


def _single(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32)


@dataclass
class Reference:
    """Learned statistics of one camera (see module docstring)."""

    learn_frames: int = 10
    ready: bool = False
    n: int = 0
    mean: float = 0.0
    sharp_q: float = 0.0  # sharp_q / (contrast + 1)
    sharp_s: float = 0.0  # sharp_s / (contrast + 1)
    noise: float = 0.0
    chroma: tuple[float, float] | None = None
    cell_mean: np.ndarray | None = None
    cell_std: np.ndarray | None = None
    hp: np.ndarray | None = None
    hp2: np.ndarray | None = None  # coarse structure (None in references saved by version 1)
    # How well single learning frames matched the learned structure (fine, coarse): what a
    # clean frame scores, so the scene-change test can be judged relative to it.
    self_ncc: tuple[float, float] = (1.0, 0.0)
    col_prof: np.ndarray | None = None
    row_prof: np.ndarray | None = None
    power_max: np.ndarray | None = None
    # Plain views only (too few textured cells): the fine grain at q resolution and what a
    # clean frame's grain matched it (None for textured views, which need no grain).
    grain: np.ndarray | None = None
    grain_ncc: float = 0.0
    _pending: list[Features] = field(default_factory=list, repr=False)

    def reset(self) -> None:
        """Forget everything; the next plausible frames are learned afresh."""
        keep = self.learn_frames
        self.__init__(learn_frames=keep)  # type: ignore[misc]

    def plain(self) -> bool:
        """The learned view has too few textured cells to judge by texture (asphalt, a wall)."""
        if self.cell_std is None:
            return False
        return int((self.cell_std > JUDGE_STD).sum()) < MIN_JUDGED

    def compatible(self, f: Features) -> bool:
        """True when f has the same analysis geometry as the learned reference."""
        return (
            self.hp is not None
            and self.hp.shape == f.hp.shape
            and (self.power_max is not None and self.power_max.shape == f.power.shape)
        )

    def learn(self, f: Features) -> bool:
        """Offer a plausible frame while learning; True when the reference just became ready."""
        if self.ready:
            return False
        if self._pending and self._pending[-1].hp.shape != f.hp.shape:
            self._pending.clear()
        self._pending.append(f)
        if len(self._pending) < self.learn_frames:
            return False
        fs = self._pending
        self.mean = float(np.median([x.mean for x in fs]))
        self.sharp_q = float(np.median([x.sharp_q / (x.contrast + 1.0) for x in fs]))
        self.sharp_s = float(np.median([x.sharp_s / (x.contrast + 1.0) for x in fs]))
        self.noise = float(np.median([x.noise for x in fs]))
        chromas = [x.chroma for x in fs if x.chroma is not None]
        self.chroma = (
            (float(np.median([c[0] for c in chromas])), float(np.median([c[1] for c in chromas])))
            if len(chromas) == len(fs)
            else None
        )
        self.cell_mean = np.median(np.stack([x.cell_mean for x in fs]), axis=0).astype(np.float32)
        self.cell_std = np.median(np.stack([x.cell_std for x in fs]), axis=0).astype(np.float32)
        # Per-pixel median: people and cars passing while learning leave no trace.
        self.hp = np.median(np.stack([x.hp for x in fs]), axis=0).astype(np.float32)
        self.hp2 = np.median(np.stack([x.hp2 for x in fs]), axis=0).astype(np.float32)
        self.self_ncc = (
            float(np.median([block_ncc(x.hp, self.hp) or 0.0 for x in fs])),
            float(np.median([block_ncc(x.hp2, self.hp2) or 0.0 for x in fs])),
        )
        self.col_prof = fs[-1].col_prof.copy()
        self.row_prof = fs[-1].row_prof.copy()
        self.power_max = np.max(np.stack([x.power for x in fs]), axis=0).astype(np.float32)
        self.grain, self.grain_ncc = None, 0.0
        if self.plain() and all(x.q.shape == fs[0].q.shape for x in fs):
            gs = [grain(x.q) for x in fs]
            self.grain = np.median(np.stack(gs), axis=0).astype(np.float32)
            self.grain_ncc = float(np.median([grain_register(self.grain, g)[2] for g in gs]))
        self.n = len(fs)
        self.ready = True
        self._pending = []
        return True

    def adapt(self, f: Features, rate: float, static: np.ndarray | None = None) -> None:
        """Follow slow changes of an intact camera (exponential forgetting at `rate`).

        `static` (float 0/1 like f.hp) limits the structure update to pixels where nothing
        moves, so a crowd or traffic passing is not learned as the scene.
        """
        if not self.ready or not self.compatible(f):
            return
        a, b = rate, 1.0 - rate
        self.mean = b * self.mean + a * f.mean
        self.sharp_q = b * self.sharp_q + a * f.sharp_q / (f.contrast + 1.0)
        self.sharp_s = b * self.sharp_s + a * f.sharp_s / (f.contrast + 1.0)
        self.noise = b * self.noise + a * f.noise
        if self.chroma is not None and f.chroma is not None:
            self.chroma = (
                b * self.chroma[0] + a * f.chroma[0],
                b * self.chroma[1] + a * f.chroma[1],
            )
        assert self.cell_mean is not None and self.cell_std is not None and self.hp is not None
        if static is None:
            self.cell_mean = b * self.cell_mean + a * f.cell_mean
            self.cell_std = b * self.cell_std + a * f.cell_std
        else:  # cells something moved through keep what they had
            gh, gw = self.cell_mean.shape
            still = cv2.resize(static, (gw, gh), interpolation=cv2.INTER_AREA) > 0.99
            k = a * still.astype(np.float32)
            self.cell_mean = self.cell_mean + k * (f.cell_mean - self.cell_mean)
            self.cell_std = self.cell_std + k * (f.cell_std - self.cell_std)
        if static is None:
            self.hp = b * self.hp + a * f.hp
        else:
            self.hp = self.hp + a * static * (f.hp - self.hp)
        if self.hp2 is not None and self.hp2.shape == f.hp2.shape:
            self.hp2 = b * self.hp2 + a * f.hp2
        if self.grain is not None and self.grain.shape == f.q.shape:
            g = grain(f.q)
            if static is None:
                self.grain = b * self.grain + a * g
            else:
                keep = static
                if keep.shape != g.shape:
                    keep = cv2.resize(keep, (g.shape[1], g.shape[0]), interpolation=cv2.INTER_AREA)
                self.grain = self.grain + a * keep * (g - self.grain)
        assert self.power_max is not None
        # Peaks decay slowly and new ones grow only at `rate`: never absorbed in one frame.
        self.power_max = np.maximum(
            self.power_max * (1.0 - rate * 0.5), self.power_max + rate * (f.power - self.power_max)
        )
        self.col_prof, self.row_prof = f.col_prof.copy(), f.row_prof.copy()
        self.n += 1

    # ---- persistence (e.g. the vision_references table, for inspection rounds) ------------

    def to_bytes(self) -> bytes:
        """A compact npz blob of a ready reference."""
        if not self.ready:
            raise ValueError("the reference is still learning; nothing to save yet")
        buf = io.BytesIO()
        arrays = {
            "version": np.array(FORMAT_VERSION),
            "scalars": np.array([self.mean, self.sharp_q, self.sharp_s, self.noise, self.n]),
            "chroma": np.array(self.chroma if self.chroma is not None else (np.nan, np.nan)),
            "cell_mean": self.cell_mean,
            "cell_std": self.cell_std,
            "hp": _half(self.hp),
            "hp2": _half(self.hp2) if self.hp2 is not None else np.zeros(0, np.float16),
            "self_ncc": np.array(self.self_ncc),
            "col_prof": _half(self.col_prof),
            "row_prof": _half(self.row_prof),
            "power_max": _half(self.power_max),
            "grain": _half(self.grain) if self.grain is not None else np.zeros(0, np.float16),
            "grain_ncc": np.array(self.grain_ncc),
        }
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, learn_frames: int = 10) -> Reference:
        """Load a reference saved by to_bytes (raises ValueError on a foreign blob)."""
        try:
            z = np.load(io.BytesIO(blob), allow_pickle=False)
            version = int(z["version"])
            if version not in (1, 2, FORMAT_VERSION):
                raise KeyError(f"format {version} is not {FORMAT_VERSION}")
            hp2 = _single(z["hp2"]) if version >= 2 and z["hp2"].size else None
            self_ncc = tuple(float(v) for v in z["self_ncc"]) if version >= 2 else (1.0, 0.0)
            g = _single(z["grain"]) if version >= 3 and z["grain"].size else None
            grain_ncc = float(z["grain_ncc"]) if version >= 3 else 0.0
            mean, sq, ss, noise, n = (float(v) for v in z["scalars"])
            chroma = tuple(float(v) for v in z["chroma"])
            return cls(
                learn_frames=learn_frames,
                ready=True,
                n=int(n),
                mean=mean,
                sharp_q=sq,
                sharp_s=ss,
                noise=noise,
                chroma=None if np.isnan(chroma[0]) else (chroma[0], chroma[1]),
                cell_mean=z["cell_mean"],
                cell_std=z["cell_std"],
                hp=_single(z["hp"]),
                hp2=hp2,
                self_ncc=(self_ncc[0], self_ncc[1]),
                col_prof=_single(z["col_prof"]),
                row_prof=_single(z["row_prof"]),
                power_max=_single(z["power_max"]),
                grain=g,
                grain_ncc=grain_ncc,
            )
        except (KeyError, OSError, EOFError, ValueError) as exc:
            raise ValueError(f"not a saved camera reference: {exc}") from None
