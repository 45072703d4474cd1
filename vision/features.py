"""Per-frame image measurements the quality checks are built on (cheap, on the small images).

Global shifts (shake, PTZ drift) come from phase correlation in a 4x3 grid of blocks of the
structure image, leaving out blocks where something moves (block_shift), or on plain views
from one phase correlation at full q resolution with what moves blanked (fine_shift). Stripe
interference is found in the power spectrum of a point-sampled (not averaged) image, where
fine periodic bars keep their energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.frames import Prepared

CELLS_X = 16
FLAT_TOLERANCE = 1
HP_KERNEL = (7, 7)
LOWFREQ_RADIUS = 5
ISO_UNIT = 8.0  # whitened isolated-peak level of clear interference
EXCESS_UNIT = 0.03  # energy share above twice the reference of clear interference


@dataclass
class Features:
    """What one frame measures; see each field's comment for the scale."""

    ts: float
    pts: float | None
    mean: float  # luma 0..255 (small image)
    p95: float  # 95th percentile luma
    sat_share: float  # share of pixels >= 240
    flat_share: float  # share of q pixels within +-1 of the commonest value
    mode: int  # commonest q value
    sharp_q: float  # mean |gradient| of q (point-sampled, fine scale)
    sharp_s: float  # mean |gradient| of small (area-averaged, coarse scale)
    contrast: float  # std of small luma
    noise: float  # robust per-pixel noise sigma on q, grey levels
    chroma: tuple[float, float] | None  # mean (a, b) in Lab around 0, None for luma input
    chroma_spread: float  # sqrt(var a + var b)
    cell_mean: np.ndarray  # (gh, gw) float32
    cell_std: np.ndarray  # (gh, gw) float32
    hp: np.ndarray  # small luma minus its 7x7 local mean (structure, light-invariant-ish)
    hp2: np.ndarray  # coarse structure: small at 1/4 size minus its 5x5 local mean
    col_prof: np.ndarray  # normalised high-passed column profile of small
    row_prof: np.ndarray  # normalised high-passed row profile of small
    power: np.ndarray  # half-plane power spectrum of point-sampled luma q2, sums to 1
    q: np.ndarray  # uint8 q (kept for the frozen check)
    q2: np.ndarray  # float32 even-sized point-sampled luma the spectrum was taken of


_WINDOWS: dict[tuple[int, int], np.ndarray] = {}
_LOWFREQ: dict[tuple[int, int], np.ndarray] = {}


def _window(h: int, w: int) -> np.ndarray:
    win = _WINDOWS.get((h, w))
    if win is None:
        win = cv2.createHanningWindow((w, h), cv2.CV_32F)
        _WINDOWS[(h, w)] = win
    return win


def _hist_quantile(hist: np.ndarray, total: float, q: float) -> float:
    c = np.cumsum(hist)
    return float(np.searchsorted(c, q * total))


def _profile(v: np.ndarray) -> np.ndarray:
    """High-pass (minus a 9-tap moving mean) and normalise a 1-D profile."""
    row = v.reshape(1, -1).astype(np.float32)
    if row.shape[1] > 9:
        row = row - cv2.blur(row, (9, 1), borderType=cv2.BORDER_REPLICATE)
    m, s = cv2.meanStdDev(row)
    sd = float(s[0, 0])
    if sd <= 1e-6:
        return np.zeros(row.shape[1], np.float32)
    return ((row - float(m[0, 0])) / sd).ravel()


def ccs_power(s: np.ndarray) -> np.ndarray:
    """Power of the non-negative-u half plane from OpenCV's packed (CCS) 2-D real DFT.

    Returns (M, N//2 + 1) like numpy.fft.rfft2 would, for even M and N.
    """
    m, n = s.shape
    out = np.zeros((m, n // 2 + 1), np.float32)
    sq = s * s
    out[:, 1 : n // 2] = sq[:, 1 : n - 1 : 2] + sq[:, 2 : n - 1 : 2]
    for col, u in ((0, 0), (n - 1, n // 2)):
        c = sq[:, col]
        pair = c[1 : m - 1 : 2] + c[2 : m - 1 : 2]  # v = 1 .. m/2-1
        out[1 : m // 2, u] = pair
        out[m - 1 : m // 2 : -1, u] = pair  # mirror v -> m - v
        out[0, u] = c[0]
        out[m // 2, u] = c[m - 1]
    return out


def _lowfreq(m: int, half: int) -> np.ndarray:
    mask = _LOWFREQ.get((m, half))
    if mask is None:
        v = np.minimum(np.arange(m), m - np.arange(m))[:, None]
        u = np.arange(half)[None, :]
        mask = (u <= LOWFREQ_RADIUS) & (v <= LOWFREQ_RADIUS)
        _LOWFREQ[(m, half)] = mask
    return mask


def spectrum(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(normalised power spectrum with low frequencies zeroed, the zero-mean even-sized crop)."""
    h, w = img.shape
    h2, w2 = h - h % 2, w - w % 2
    f = img[:h2, :w2].astype(np.float32)
    f -= float(f.mean())
    s = cv2.dft(f * _window(h2, w2))
    pw = ccs_power(s)
    pw[_lowfreq(*pw.shape)] = 0.0
    tot = float(pw.sum())
    return (pw / tot if tot > 0 else pw), f


def _ring(a: np.ndarray, v: int, u: int, r: int = 2) -> np.ndarray:
    """Values in the (2r+1)^2 window around (v, u), rows wrapping, without the centre."""
    rows = [(v + dv) % a.shape[0] for dv in range(-r, r + 1)]
    cols = [c for c in range(u - r, u + r + 1) if 0 <= c < a.shape[1]]
    win = a[np.ix_(rows, cols)].ravel()
    centre = r * len(cols) + cols.index(u)
    return np.delete(win, centre)


def stripe_score(power: np.ndarray, ref_power_max: np.ndarray, img: np.ndarray) -> float:
    """How strongly a new, frame-wide periodic pattern is present (see stripe_peak)."""
    return stripe_peak(power, ref_power_max, img)[0]


def notch(img: np.ndarray, v: int, u: int, r: int = 1) -> np.ndarray:
    """img without the frequencies within r bins of (v, u) (rfft2 indexing) and their mirror:
    a periodic pattern at that frequency taken out, the rest of the picture left."""
    f = np.fft.rfft2(img)
    m, half = f.shape
    cols = slice(max(0, u - r), min(half, u + r + 1))
    for vv in {v, (m - v) % m} if u <= r else {v}:
        for dv in range(-r, r + 1):
            f[(vv + dv) % m, cols] = 0
    return np.fft.irfft2(f, s=img.shape).astype(np.float32)


def stripe_peak(
    power: np.ndarray, ref_power_max: np.ndarray, img: np.ndarray
) -> tuple[float, int, int]:
    """How strongly a new, frame-wide periodic pattern (interference bars) is present.

    The spectrum is whitened by the reference's (per-bin maximum over its learning frames), the
    most isolated new peak is found (peak / (5x5 median + 1)), and it is weighted by how evenly
    that frequency is present over the four quadrants of the image: interference covers the
    whole picture, while new periodic scene content (a facade coming into view) does not.
    """
    r = power / (ref_power_max + 2e-4)
    iso = r / (cv2.medianBlur(r.astype(np.float32), 5) + 1.0)
    k = int(np.argmax(iso))
    excess = power - 2.0 * ref_power_max
    k2 = int(np.argmax(excess))
    v, u = divmod(k, iso.shape[1])
    # Two views of "a new peak": isolated in the whitened spectrum (off-axis patterns), or a
    # large share of the energy where the scene had little (bands along the image axes, where
    # street scenes already carry much energy). Both scaled so that 1.0 is the threshold.
    peak = float(iso[v, u]) / ISO_UNIT
    peak2 = float(excess.flat[k2]) / EXCESS_UNIT
    if peak2 > peak:
        # The new energy must stand out from its neighbours in this frame's own spectrum: a
        # blurred picture also shifts energy to low frequencies, but smoothly.
        v2, u2 = divmod(k2, iso.shape[1])
        own = power[v2, u2] / (float(np.median(_ring(power, v2, u2))) + 1e-9)
        peak2 *= min(1.0, own / 8.0)
    if peak2 > peak:
        peak = peak2
        v, u = divmod(k2, iso.shape[1])
    if peak < 0.5:
        return peak * 0.25, v, u
    m, n = img.shape
    fy = v if v <= m // 2 else v - m
    ex = np.exp(-2j * np.pi * u * np.arange(n) / n)
    ey = np.exp(-2j * np.pi * fy * np.arange(m) / m)
    amps = []
    for xs in (slice(0, n // 2), slice(n // 2, n)):
        rows = img[:, xs] @ ex[xs]
        for ys in (slice(0, m // 2), slice(m // 2, m)):
            amps.append(abs(complex(rows[ys] @ ey[ys])))
    uniformity = min(amps) / max(max(amps), 1e-6)
    return peak * uniformity, v, u


def measure(
    p: Prepared, valid: np.ndarray | None = None, valid2: np.ndarray | None = None
) -> Features:
    """All per-frame measurements of one prepared frame.

    `valid` / `valid2` (uint8, shaped like `small` / the half-q image) exclude privacy-masked
    pixels from the brightness, colour and flatness statistics, so a black mask does not make
    a camera look dark, flat or grey.
    """
    small = p.small
    h, w = small.shape
    sf = small.astype(np.float32)
    n = float(h * w) if valid is None else float(max(1, cv2.countNonZero(valid)))
    hist = cv2.calcHist([small], [0], valid, [256], [0, 256]).ravel()
    mean, std = cv2.meanStdDev(small, mask=valid)
    mean_v, std_v = float(mean[0, 0]), float(std[0, 0])
    p95 = _hist_quantile(hist, n, 0.95)
    sat_share = float(hist[240:].sum()) / n

    q = p.q
    # Point-sampled half of q: per-pixel statistics (flatness, noise, spectrum) need no more.
    q2 = np.ascontiguousarray(q[::2, ::2]) if q.shape[1] >= 2 * w else q
    if valid2 is not None and valid2.shape != q2.shape:
        valid2 = None
    qh = cv2.calcHist([q2], [0], valid2, [256], [0, 256]).ravel()
    mode = int(np.argmax(qh))
    lo, hi = max(0, mode - FLAT_TOLERANCE), min(256, mode + FLAT_TOLERANCE + 1)
    flat_share = float(qh[lo:hi].sum()) / max(1.0, float(qh.sum()))

    dxq = cv2.absdiff(q[:, 1:], q[:, :-1])
    dyq = cv2.absdiff(q[1:, :], q[:-1, :])
    sharp_q = 0.5 * (cv2.mean(dxq)[0] + cv2.mean(dyq)[0])
    dxs = cv2.absdiff(small[:, 1:], small[:, :-1])
    dys = cv2.absdiff(small[1:, :], small[:-1, :])
    sharp_s = 0.5 * (cv2.mean(dxs)[0] + cv2.mean(dys)[0])

    # Noise: median absolute residual from a 3x3 median, scaled to a Gaussian sigma.
    res = cv2.absdiff(q2, cv2.medianBlur(q2, 3))
    rh = cv2.calcHist([res], [0], None, [256], [0, 256]).ravel()
    c = np.cumsum(rh)
    half = 0.5 * float(res.size)
    k = int(np.searchsorted(c, half))
    below = float(c[k - 1]) if k > 0 else 0.0
    frac = (half - below) / max(1.0, float(rh[k])) if k < 256 else 0.0
    noise = (k + frac) * 1.4826 * 1.5

    chroma: tuple[float, float] | None = None
    spread = 0.0
    if p.colour is not None:
        lab = cv2.cvtColor(p.colour, cv2.COLOR_BGR2Lab)
        m, s = cv2.meanStdDev(lab, mask=valid)
        chroma = (float(m[1, 0]) - 128.0, float(m[2, 0]) - 128.0)
        spread = float(np.hypot(s[1, 0], s[2, 0]))

    gw = min(CELLS_X, w)
    gh = max(1, int(round(gw * h / w)))
    cm = cv2.resize(sf, (gw, gh), interpolation=cv2.INTER_AREA)
    c2 = cv2.resize(sf * sf, (gw, gh), interpolation=cv2.INTER_AREA)
    cs = np.sqrt(np.maximum(c2 - cm * cm, 0.0))

    hp = sf - cv2.blur(sf, HP_KERNEL)
    c4 = cv2.resize(sf, (max(8, w // 4), max(6, h // 4)), interpolation=cv2.INTER_AREA)
    hp2 = c4 - cv2.blur(c4, (5, 5))
    col = _profile(cv2.reduce(sf, 0, cv2.REDUCE_AVG))
    row = _profile(cv2.reduce(sf, 1, cv2.REDUCE_AVG))

    power, q2f = spectrum(q2)

    return Features(
        ts=p.ts,
        pts=p.pts,
        mean=mean_v,
        p95=p95,
        sat_share=sat_share,
        flat_share=flat_share,
        mode=mode,
        sharp_q=sharp_q,
        sharp_s=sharp_s,
        contrast=std_v,
        noise=noise,
        chroma=chroma,
        chroma_spread=spread,
        cell_mean=cm,
        cell_std=cs,
        hp=hp,
        hp2=hp2,
        col_prof=col,
        row_prof=row,
        power=power,
        q=q,
        q2=q2f,
    )


def profile_shift(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[float, float]:
    """Shift (pixels) that best maps profile a onto b, and its NCC (-1..1)."""
    n = a.size
    if n != b.size or n < 8:
        return 0.0, 0.0
    max_lag = max(1, min(max_lag, n // 2))
    full = np.correlate(b, a, mode="full")  # index n-1 is lag 0
    lags = np.arange(-max_lag, max_lag + 1)
    vals = full[n - 1 + lags] / (n - np.abs(lags))
    i = int(np.argmax(vals))
    best = float(vals[i])
    off = 0.0
    if 0 < i < len(vals) - 1:
        y0, y1, y2 = float(vals[i - 1]), best, float(vals[i + 1])
        den = y0 - 2 * y1 + y2
        if den < 0:
            off = 0.5 * (y0 - y2) / den
    return float(lags[i]) + off, best


def aligned_ncc(a: np.ndarray, b: np.ndarray, dx: float, dy: float) -> float:
    """NCC of a against b shifted by (dx, dy) whole pixels, on their overlap."""
    h, w = a.shape
    ix, iy = int(round(dx)), int(round(dy))
    if abs(ix) >= w - 4 or abs(iy) >= h - 4:
        return 0.0
    # b's content at x appears in a at x + ix.
    ay0, ay1 = max(0, iy), h + min(0, iy)
    ax0, ax1 = max(0, ix), w + min(0, ix)
    pa = a[ay0:ay1, ax0:ax1]
    pb = b[ay0 - iy : ay1 - iy, ax0 - ix : ax1 - ix]
    num = float(cv2.sumElems(cv2.multiply(pa, pb))[0])
    den = float(
        np.sqrt(cv2.sumElems(cv2.multiply(pa, pa))[0] * cv2.sumElems(cv2.multiply(pb, pb))[0])
    )
    return num / den if den > 1e-6 else 0.0


BLOCKS_X, BLOCKS_Y = 4, 3


def blocks(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """a cut into rows x cols equal blocks: shape (rows, cols, bh * bw) (edges dropped)."""
    h, w = a.shape
    bh, bw = h // rows, w // cols
    out = a[: rows * bh, : cols * bw].reshape(rows, bh, cols, bw).swapaxes(1, 2)
    return out.reshape(rows, cols, bh * bw)


def block_shift(
    a: np.ndarray, b: np.ndarray, moving: np.ndarray | None = None, min_response: float = 0.15
) -> tuple[float, float, int]:
    """Global shift (pixels) of picture b against a from the static background only.

    The picture is cut into a 4x3 grid; each block's shift comes from phase correlation. Blocks
    that are flat, where the motion detector sees something moving (`moving`, 0/1 like a), or
    whose correlation peak is weak are left out; the blocks left must agree (within a pixel
    of their median) for a credible shift. A car crossing one block therefore does not move the
    camera, while a shaking or panning camera moves every block alike. Returns (dx, dy,
    blocks that agreed); 0 agreeing blocks means "no credible estimate".
    """
    h, w = a.shape
    bw, bh = w // BLOCKS_X, h // BLOCKS_Y
    if a.shape != b.shape or bw < 8 or bh < 8:
        return 0.0, 0.0, 0
    win = _window(bh, bw)
    # Which blocks to try, from per-block statistics computed at once (numpy per block is slow).
    use = (blocks(a, BLOCKS_Y, BLOCKS_X).std(axis=2) >= 1.0) & (
        blocks(b, BLOCKS_Y, BLOCKS_X).std(axis=2) >= 1.0
    )
    if moving is not None and moving.shape == a.shape:
        use &= (blocks(moving, BLOCKS_Y, BLOCKS_X) > 0).mean(axis=2) <= 0.5
    shifts: list[tuple[float, float]] = []
    for j, i in zip(*np.nonzero(use), strict=True):
        ys, xs = slice(j * bh, (j + 1) * bh), slice(i * bw, (i + 1) * bw)
        (dx, dy), resp = cv2.phaseCorrelate(a[ys, xs], b[ys, xs], win)
        if resp >= min_response:
            shifts.append((dx, dy))
    if len(shifts) < 3:
        return 0.0, 0.0, 0
    s = np.array(shifts, np.float64)
    med = np.median(s, axis=0)
    agree = np.hypot(s[:, 0] - med[0], s[:, 1] - med[1]) <= 1.0
    n = int(agree.sum())
    if n < max(3, int(np.ceil(0.6 * len(s)))):
        return 0.0, 0.0, 0
    m = s[agree].mean(axis=0)
    return float(m[0]), float(m[1]), n


def fine_shift(
    a: np.ndarray, b: np.ndarray, keep: np.ndarray | None = None, min_response: float = 0.3
) -> tuple[float, float] | None:
    """Global shift (pixels) of b against a by one phase correlation at full q resolution.

    For plain views (asphalt, a wall) whose block structure is too faint for block_shift: fine
    specks and grain still register at q resolution. `keep` (float 0..1 like a) softly blanks
    what moves, so a passing car does not pull the peak. None when the peak is weak.
    """
    if a.shape != b.shape or min(a.shape) < 16:
        return None
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    if keep is not None and keep.shape == a.shape:
        soft = cv2.blur(keep, (9, 9))
        fa = (fa - float(fa.mean())) * soft
        fb = (fb - float(fb.mean())) * soft
    (dx, dy), resp = cv2.phaseCorrelate(fa, fb, _window(*a.shape))
    return (float(dx), float(dy)) if resp >= min_response else None
