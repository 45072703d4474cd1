"""Detection quality of vision/ on labelled generated video: per-fault recall/precision, false
alarms on clean video, motion F-measure against OpenCV MOG2 on the same frames.

    .venv/bin/python -m bench.vision_quality [--seeds 20] [--clean-frames 10000] [--width 640]
    .venv/bin/python -m bench.vision_quality --videos tests/data/video [--starts 30,60,90,120]

With `--videos DIR` the same 12 faults are applied to real clips instead (every .mp4/.avi/.mkv
in DIR, analysed at `--fps` by their timestamps): the camera's view is the centre 2/3 of the
recorded picture, so a moved camera, shake and drift move that window over real content; the
picture faults are drawn exactly as in the synthetic mode. Each clip is run clean once and once
per fault per start (analysed frame) from a fresh analyser, through the worker's own chain
(motion + quality, as `CameraPipeline`).

A fault counts as detected when its code is active within `--window` frames (default 10 = 2 s
at 5 fps) of the frame it starts. A false alarm is a fault turning on in a clean stretch (a
clean sequence after the reference is learned, or a faulty sequence before its fault starts).
Precision of a code = its onsets while that fault is injected / all its onsets anywhere.

    .venv/bin/python -m bench.vision_quality --rules tests/data/video [--fps 5]

With `--rules DIR` the zones, tripwires and dwell rules of DIR/labels.json are run on the clips
they name (the worker's chain, quality checks off) and the events are matched with the
hand-counted ones, rule by rule (a line's crossings by that line's events, a zone's by its
own): a crossing or entry is found within `RULE_TOLERANCE_S` of its labelled time,
a dwell within `DWELL_TOLERANCE_S` of the moment the labelled stay reaches the zone's dwell
time; each true event matches at most one found event, and a found event that matches none is
false (events near a label marked "doubtful" are neither). Printed per clip and kind: true,
found, recall, false and false per 100 true, beside the baseline: the same tracker without
cutting blobs of objects side by side and without joining the pieces of one object again.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from simulators.video import LIGHT_EVENTS, SynthConfig, SynthSequence, apply_fault, fault_params
from vision.faults import FAULT_CODES
from vision.frames import Frame, prepare
from vision.motion import MotionDetector
from vision.pipeline import CameraConfig, CameraPipeline
from vision.quality import QualityAnalyzer

WARMUP = 15  # frames before the quality reference is learned (10) plus slack


@dataclass
class SeqOutcome:
    """What the analyzer did on one sequence."""

    onsets: list[tuple[int, str]] = field(default_factory=list)  # (frame, code) turned on
    active: list[frozenset[str]] = field(default_factory=list)
    frames: int = 0


def run_quality(cfg: SynthConfig) -> SeqOutcome:
    """Run the quality analyzer over one generated sequence."""
    qa = QualityAnalyzer()
    out = SeqOutcome()
    prev: frozenset[str] = frozenset()
    for fr in SynthSequence(cfg):
        if fr.image is None:
            rep = qa.no_frame(fr.ts)
        else:
            rep = qa.update(prepare(Frame(fr.image, fr.ts, fr.pts)))
        now = frozenset(rep.codes())
        for c in now - prev:
            out.onsets.append((fr.index, c))
        out.active.append(now)
        prev = now
        out.frames += 1
    return out


def _cfg(
    seed: int, fault: str | None, n: int, start: int, width: int, height: int, fps: float
) -> SynthConfig:
    return SynthConfig(
        width=width,
        height=height,
        fps=fps,
        n_frames=n,
        seed=seed,
        fault=fault,
        fault_start=start,
        night=seed % 4 == 3,
        jpeg_quality=(75 if seed % 2 else None),
        light_events=LIGHT_EVENTS if seed % 3 else ("clouds",),
    )


def fault_table(
    seeds: int,
    window: int,
    width: int,
    height: int,
    fps: float,
    faults: tuple[str, ...] = FAULT_CODES,
) -> tuple[dict[str, dict[str, float]], Counter[str], int, list[str]]:
    """Recall/latency per fault, onsets per code, clean frames seen, and missed cases."""
    start = 40
    n = start + window + 10
    stats: dict[str, dict[str, float]] = {}
    onsets_all: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    clean_frames = 0
    false_onsets: Counter[str] = Counter()
    missed: list[str] = []
    for fault in faults:
        hits, lat = 0, []
        also: Counter[str] = Counter()
        for s in range(seeds):
            seed = 1000 * (FAULT_CODES.index(fault) + 1) + s
            out = run_quality(_cfg(seed, fault, n, start, width, height, fps))
            for frame, code in out.onsets:
                onsets_all[code] += 1
                if frame < start:
                    if frame >= WARMUP:
                        false_onsets[code] += 1
                elif code == fault:
                    correct[code] += 1
                else:
                    also[code] += 1
            clean_frames += start - WARMUP
            first = next(
                (i for i in range(start, min(n, start + window)) if fault in out.active[i]), None
            )
            if first is not None:
                hits += 1
                lat.append(first - start)
            else:
                missed.append(f"{fault} seed={seed}")
        stats[fault] = {
            "recall": hits / seeds,
            "latency_frames": float(np.mean(lat)) if lat else float("nan"),
            "also": dict(also),  # type: ignore[dict-item]
        }
    for fault in faults:
        stats[fault]["precision"] = correct[fault] / max(1, onsets_all[fault])
    return stats, false_onsets, clean_frames, missed


def clean_false_alarms(
    frames: int, width: int, height: int, fps: float
) -> tuple[int, int, Counter]:
    """Onsets of any fault on clean sequences (after learning): (onsets, frames judged, by code)."""
    per_seq = 500
    seqs = max(1, frames // (per_seq - WARMUP))
    by_code: Counter[str] = Counter()
    judged = 0
    for k in range(seqs):
        out = run_quality(_cfg(50_000 + k, None, per_seq, per_seq, width, height, fps))
        judged += per_seq - WARMUP
        for frame, code in out.onsets:
            if frame >= WARMUP:
                by_code[code] += 1
    return sum(by_code.values()), judged, by_code


def motion_f(seeds: int, frames: int, width: int, height: int, fps: float) -> dict[str, float]:
    """Pixel-level precision/recall/F of vision.motion and of MOG2 (full-res) on the same frames.

    Ground truth: the generator's object masks at the detector's 160-wide grid; pixels only
    partly covered (0 < cover < 0.5) are "don't care", as in the CDnet benchmark.
    """
    acc = {"vision.motion": [0, 0, 0], "MOG2 full-res": [0, 0, 0]}
    for s in range(seeds):
        cfg = SynthConfig(
            width=width,
            height=height,
            fps=fps,
            n_frames=frames,
            seed=7000 + s,
            with_masks=True,
            night=s % 3 == 2,
            jpeg_quality=75,
            light_events=("clouds", "lights_on", "exposure_step", "headlights"),
        )
        det = MotionDetector()
        mog = cv2.createBackgroundSubtractorMOG2(detectShadows=False)
        for fr in SynthSequence(cfg):
            assert fr.image is not None and fr.mask is not None
            r = det.update(prepare(Frame(fr.image, fr.ts)))
            mm = mog.apply(cv2.cvtColor(fr.image, cv2.COLOR_BGR2GRAY))
            if not r.ready or det.raw_mask is None:
                continue
            h, w = det.raw_mask.shape
            cov = cv2.resize(fr.mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
            gt, care = cov >= 0.5, (cov <= 0.0) | (cov >= 0.5)
            mog_small = (
                cv2.resize((mm > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
            )
            for name, dm in (
                ("vision.motion", det.raw_mask.astype(bool)),
                ("MOG2 full-res", mog_small),
            ):
                a = acc[name]
                a[0] += int(np.sum(gt & dm))
                a[1] += int(np.sum(~gt & dm & care))
                a[2] += int(np.sum(gt & ~dm))
    out = {}
    for name, (tp, fp, fn) in acc.items():
        p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
        out[name] = (p, r, 2 * p * r / max(1e-9, p + r))
    return out  # type: ignore[return-value]


# ---- real footage ------------------------------------------------------------------------------

VIDEO_EXT = (".mp4", ".avi", ".mkv", ".mov")
VIEW = 2 / 3  # the camera's view: this share of the recorded width and height


@dataclass
class Clip:
    """A real clip decoded at the analysis rate: BGR frames and their timestamps (s)."""

    name: str
    frames: list[np.ndarray]
    ts: list[float]


def load_clip(path: str, fps: float, max_frames: int = 100_000) -> Clip:
    """Decode a clip, keeping frames >= 1/fps apart by their timestamps."""
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {path}")
    src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames, ts = [], []
    due, i = 0.0, 0
    while len(frames) < max_frames:
        ok, img = cap.read()
        if not ok:
            break
        t = i / src_fps
        i += 1
        if t < due - 0.5 / src_fps:
            continue
        due += 1.0 / fps
        frames.append(img)
        ts.append(t)
    cap.release()
    return Clip(os.path.basename(path), frames, ts)


def _view(img: np.ndarray, ox: float, oy: float) -> np.ndarray:
    h, w = img.shape[:2]
    vw, vh = int(w * VIEW) // 2 * 2, int(h * VIEW) // 2 * 2
    x = int(round(min(max(0.0, ox), w - vw)))
    y = int(round(min(max(0.0, oy), h - vh)))
    return img[y : y + vh, x : x + vw]


def run_real(
    clip: Clip, fault: str | None, start: int, n: int, seed: int, trace=None
) -> tuple[SeqOutcome, list[float]]:
    """One run over a real clip from a fresh camera chain; fault from analysed frame `start`.

    Returns the outcome and per-frame quality seconds (for the cost line).
    """
    rng = np.random.default_rng(seed)
    h, w = clip.frames[0].shape[:2]
    vw, vh = int(w * VIEW) // 2 * 2, int(h * VIEW) // 2 * 2
    cx, cy = (w - vw) / 2, (h - vh) / 2
    variant = "default"
    if fault == "signal_loss":
        variant = str(rng.choice(["black", "blue", "none"]))
    elif fault == "frozen":
        variant = str(rng.choice(["pixels", "pts_stalled"]))
    p = fault_params(rng, vw, vh)
    # Moved: the view jumps by a quarter of its size or more, to a corner of the recording.
    jump = (float(rng.choice([-1.0, 1.0])) * cx, float(rng.choice([-1.0, 1.0])) * cy)
    drift = (float(np.sign(p["drift_v"])) * rng.uniform(0.012, 0.03) * vw, p["drift_vy"])
    cache: dict[str, np.ndarray] = {}
    pipe = CameraPipeline(
        CameraConfig(id="0" * 20, fps=5.0, quality_report_s=1e9, motion_interval_s=1e9)
    )
    out = SeqOutcome()
    prev: frozenset[str] = frozenset()
    frozen: tuple[np.ndarray, float] | None = None
    ox, oy = cx, cy
    costs: list[float] = []
    for i in range(min(n, len(clip.frames))):
        k = i - start
        on = fault is not None and k >= 0
        ts = clip.ts[i]
        pts: float | None = ts
        ox, oy = cx, cy
        if on and fault == "scene_change":
            ox, oy = cx + jump[0], cy + jump[1]
        elif on and fault == "shake":
            a = p["shake_amp"]
            ox, oy = cx + rng.uniform(-a, a), cy + rng.uniform(-a, a) * 0.6
        elif on and fault == "ptz_drift":
            ox = cx + drift[0] * (k + 1)
            oy = cy + drift[1] * (k + 1)
            span_x, span_y = w - vw, h - vh
            ox = span_x - abs(span_x - ox % (2 * span_x)) if span_x else 0.0  # bounce at edges
            oy = span_y - abs(span_y - oy % (2 * span_y)) if span_y else 0.0
        img: np.ndarray | None = np.ascontiguousarray(_view(clip.frames[i], ox, oy))
        if on and fault == "frozen" and frozen is not None:
            img = frozen[0].copy()
            if variant == "pts_stalled":
                pts = frozen[1]
        elif on and fault is not None and img is not None:
            img = apply_fault(img, fault, variant, p, k, rng, cache)
        if fault == "frozen" and k == -1 and img is not None:
            frozen = (img.copy(), ts)
        t0 = time.perf_counter()
        if img is None:
            pipe.no_frame(ts)
        else:
            pipe.process(Frame(img, ts, pts))
        costs.append(time.perf_counter() - t0)
        rep = pipe.last_report
        if trace is not None:
            trace(i, rep, pipe)
        now = frozenset(rep.codes()) if rep is not None else frozenset()
        for c in now - prev:
            out.onsets.append((i, c))
        out.active.append(now)
        prev = now
        out.frames += 1
    return out, costs


def trial_seed(fault: str, start_index: int, clip_name: str) -> int:
    """The random draw of one real-footage trial (fault strength, variant, direction)."""
    return 1000 * (FAULT_CODES.index(fault) + 1) + 37 * start_index + len(clip_name)


def first_found(out: SeqOutcome, fault: str, start: int) -> int | None:
    """Analysed frames from the fault's start until it was active (None: never)."""
    return next((i - start for i in range(start, out.frames) if fault in out.active[i]), None)


def real_table(clips: list[Clip], starts: list[int], window: int, faults: tuple[str, ...]) -> None:
    """Print per-fault recall within `window` analysed frames, delay, and clean false alarms."""
    hits: Counter[str] = Counter()
    trials: Counter[str] = Counter()
    delays: dict[str, list[int]] = {f: [] for f in faults}
    wrong: dict[str, Counter[str]] = {f: Counter() for f in faults}
    missed: list[str] = []
    false_by: Counter[str] = Counter()
    false_where: Counter[str] = Counter()
    clean = 0
    costs: list[float] = []
    for clip in clips:
        n = len(clip.frames)
        out, c = run_real(clip, None, n, n, seed=1)
        costs += c
        for frame, code in out.onsets:
            if frame >= WARMUP:
                false_by[code] += 1
                false_where[clip.name] += 1
        clean += max(0, n - WARMUP)
        for fault in faults:
            for si, start in enumerate(starts):
                if start + window > n:
                    continue
                seed = trial_seed(fault, si, clip.name)
                out, _ = run_real(clip, fault, start, start + window, seed)
                trials[fault] += 1
                for frame, code in out.onsets:
                    if WARMUP <= frame < start:
                        false_by[code] += 1
                        false_where[clip.name] += 1
                    elif frame >= start and code != fault:
                        wrong[fault][code] += 1
                clean += max(0, start - WARMUP)
                delay = first_found(out, fault, start)
                if delay is None:
                    missed.append(f"{fault}@{clip.name}:{start}")
                else:
                    hits[fault] += 1
                    delays[fault].append(delay)
    print(f"\n{'fault':14s} {'recall':>7s} {'found':>7s} {'delay':>7s}  also raised")
    worst = 1.0
    for f in faults:
        r = hits[f] / max(1, trials[f])
        worst = min(worst, r)
        d = f"{np.mean(delays[f]):5.1f} f" if delays[f] else "    - "
        also = ", ".join(f"{k} x{v}" for k, v in sorted(wrong[f].items()))
        print(f"{f:14s} {r:7.3f} {hits[f]:3d}/{trials[f]:<3d} {d}  {also}")
    print(f"minimum recall {worst:.3f} (target >= 0.95 within the window)")
    if missed:
        print("missed: " + ", ".join(missed[:40]) + (" ..." if len(missed) > 40 else ""))
    onsets = sum(false_by.values())
    rate = onsets / max(1, clean) * 10_000
    print(
        f"\nclean real video: {onsets} false onsets in {clean} analysed clean frames = "
        f"{rate:.1f} per 10,000 (target <= 1)"
        + (f"; by code: {dict(false_by)}; by clip: {dict(false_where)}" if onsets else "")
    )
    if costs:
        print(f"chain cost per analysed frame: {1000 * float(np.mean(costs)):.2f} ms (wall)")


# ---- zones, tripwires and dwell on labelled real footage ---------------------------------------

RULE_TOLERANCE_S = 1.5  # labels come from 2-2.5 fps contact sheets; ground points lag a bit
DWELL_TOLERANCE_S = 2.0  # the target: dwell found within 2 s of its threshold
RULE_KINDS = (("tripwire", "crossings"), ("zone", "entries"), ("dwell", "dwells"))


def match_times(
    truth: list[float], found: list[float], tol: float, doubtful: list[float] = ()
) -> tuple[int, int]:
    """(true events found within `tol`, found events matching no true or doubtful one).

    Each true event takes the nearest unused found event within `tol`, then each doubtful
    one excuses the nearest one left within `tol` (at most one each)."""
    left = sorted(found)
    hits = 0
    for t in sorted(truth):
        near = [f for f in left if abs(f - t) <= tol]
        if near:
            hits += 1
            left.remove(min(near, key=lambda f: abs(f - t)))
    for d in doubtful:  # a doubtful event excuses at most one found event
        near = [f for f in left if abs(f - d) <= tol]
        if near:
            left.remove(min(near, key=lambda f: abs(f - d)))
    return hits, len(left)


def rule_events(
    path: str,
    rules: dict,
    fps: float,
    before: bool = False,
    max_frames: int = 100_000,
    tracker: dict | None = None,
) -> list:
    """The zone, tripwire and dwell events of a clip under `rules` (quality checks off);
    `before`: the tracker as it was before crowds were handled (no blobs cut, no pieces of
    one object joined again, no revival; boxes given to tracks greedily by distance alone);
    `tracker`: settings of `TrackerConfig` to change (the others default)."""
    from vision.zones import TrackerConfig, ZoneEngine

    clip = load_clip(path, fps, max_frames)
    pipe = CameraPipeline(CameraConfig(id="0" * 20, fps=fps, quality_every=1 << 30, **rules))
    tracker = (
        TrackerConfig(
            split_blobs=False,
            fragment_height=0.0,
            revive_s=0.0,
            optimal=False,
            iou_weight=0.0,
            colour_weight=0.0,
            surge=0.0,
            inherit_riders=False,
        )
        if before
        else TrackerConfig(**(tracker or {}))
    )
    pipe.zones = ZoneEngine(pipe.cfg.zones, pipe.cfg.tripwires, tracker)
    out = []
    for img, t in zip(clip.frames, clip.ts, strict=True):
        out += [
            e for e in pipe.process(Frame(img, t, t)) if e.type in ("zone", "tripwire", "dwell")
        ]
    return out


def score_rules(labels: dict, events: list) -> dict[str, tuple[int, int, int]]:
    """kind -> (true, found, false) for one clip's labels and events, matched rule by rule
    (a crossing of one line never stands for a crossing of another)."""
    dwell_s = {z["id"]: z.get("dwell_s") for z in labels["rules"].get("zones", [])}
    out = {}
    for etype, kind in RULE_KINDS:
        items = labels.get(kind)
        if not items:
            continue
        key = "line" if etype == "tripwire" else "zone"
        n = hits = false = 0
        for rule in sorted(
            {d[key] for d in items} | {getattr(e, key) for e in events if e.type == etype}
        ):
            mine = [d for d in items if d[key] == rule]
            if etype == "dwell":
                sure = [d["enter"] + dwell_s[rule] for d in mine if not d.get("doubtful")]
                unsure = [d["enter"] + dwell_s[rule] for d in mine if d.get("doubtful")]
                tol = DWELL_TOLERANCE_S
            else:
                sure = [d["t"] for d in mine if not d.get("doubtful")]
                unsure = [d["t"] for d in mine if d.get("doubtful")]
                tol = RULE_TOLERANCE_S
            found = [e.ts for e in events if e.type == etype and getattr(e, key) == rule]
            h, f = match_times(sure, found, tol, unsure)
            n, hits, false = n + len(sure), hits + h, false + f
        out[kind] = (n, hits, false)
    return out


def main_rules(args: argparse.Namespace) -> None:
    """The labelled rules mode (see the module docstring)."""
    import json

    labels = json.loads(open(os.path.join(args.rules, "labels.json"), encoding="utf-8").read())
    t0 = time.perf_counter()
    print(
        f"zones, tripwires and dwell at {args.fps:g} fps against hand counts "
        f"({args.rules}/labels.json); found = within {RULE_TOLERANCE_S} s "
        f"(dwell: {DWELL_TOLERANCE_S} s of its threshold)"
    )
    print(
        f"\n{'clip':20s} {'kind':10s} {'true':>5s}   {'baseline: found  false':>22s}"
        f"   {'now: found  recall  false  per 100':>34s}"
    )
    totals: dict[str, list[int]] = {}
    for name, lab in labels.items():
        if name.startswith("_"):
            continue
        path = os.path.join(args.rules, name)
        base = score_rules(lab, rule_events(path, lab["rules"], args.fps, before=True))
        now = score_rules(lab, rule_events(path, lab["rules"], args.fps))
        for kind, (n, hits, false) in now.items():
            _, bh, bf = base[kind]
            tot = totals.setdefault(kind, [0, 0, 0, 0, 0])
            for k, v in enumerate((n, hits, false, bh, bf)):
                tot[k] += v
            print(
                f"{name:20s} {kind:10s} {n:5d}   {bh:10d} {bf:6d}     "
                f"{hits:10d} {hits / max(1, n):7.3f} {false:6d} {100 * false / max(1, n):8.1f}"
            )
    print()
    for kind, (n, hits, false, bh, bf) in totals.items():
        print(
            f"{'all clips':20s} {kind:10s} {n:5d}   {bh:10d} {bf:6d}     "
            f"{hits:10d} {hits / max(1, n):7.3f} {false:6d} {100 * false / max(1, n):8.1f}"
        )
    print("targets: recall >= 0.95 and <= 1 false per 100 true for each kind")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


def main_real(args: argparse.Namespace) -> None:
    """The real-footage mode (see the module docstring)."""
    paths = sorted(
        os.path.join(args.videos, f)
        for f in os.listdir(args.videos)
        if f.lower().endswith(VIDEO_EXT)
    )
    if not paths:
        raise SystemExit(f"no video files in {args.videos}")
    t0 = time.perf_counter()
    clips = [load_clip(pth, args.fps, args.max_frames) for pth in paths]
    starts = [int(x) for x in args.starts.split(",")]
    faults = tuple(args.faults.split(",")) if args.faults else FAULT_CODES
    print(
        f"real clips at {args.fps:g} fps, view = centre {VIEW:.2f} of the picture, faults from "
        f"analysed frames {starts}, detection window {args.window} frames "
        f"({args.window / args.fps:.1f} s):"
    )
    for c in clips:
        h, w = c.frames[0].shape[:2]
        print(f"  {c.name}: {len(c.frames)} analysed frames, {w}x{h}")
    real_table(clips, starts, args.window, faults)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="sequences per fault")
    ap.add_argument("--window", type=int, default=10, help="frames allowed to detect (2 s @ 5 fps)")
    ap.add_argument("--clean-frames", type=int, default=10_000)
    ap.add_argument("--motion-seeds", type=int, default=6)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--faults", default="", help="comma-separated subset of fault codes")
    ap.add_argument("--videos", default="", help="real-footage mode: a folder of clips")
    ap.add_argument("--rules", default="", help="labelled rules mode: DIR with labels.json")
    ap.add_argument("--starts", default="30,60,90,120", help="fault starts (analysed frames)")
    ap.add_argument("--max-frames", type=int, default=100_000, help="analysed frames per clip")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.rules:
        main_rules(args)
        return
    if args.videos:
        main_real(args)
        return
    t0 = time.perf_counter()
    print(
        f"frames {args.width}x{args.height} at {args.fps} fps; detection window "
        f"{args.window} frames ({args.window / args.fps:.1f} s); {args.seeds} sequences/fault"
    )
    faults = tuple(args.faults.split(",")) if args.faults else FAULT_CODES
    stats, false_before, clean_before, missed = fault_table(
        args.seeds, args.window, args.width, args.height, args.fps, faults
    )
    print(f"\n{'fault':14s} {'recall':>7s} {'precision':>9s} {'latency':>8s}  also raised")
    for code, st in stats.items():
        also = ", ".join(f"{k} x{v}" for k, v in sorted(st["also"].items()))  # type: ignore[union-attr]
        print(
            f"{code:14s} {st['recall']:7.3f} {st['precision']:9.3f} "
            f"{st['latency_frames']:6.1f} f  {also}"
        )
    worst = min(st["recall"] for st in stats.values())
    print(f"minimum recall {worst:.3f} (target >= 0.95)")
    if missed:
        print("missed: " + ", ".join(missed[:20]))
    onsets, judged, by_code = clean_false_alarms(
        args.clean_frames, args.width, args.height, args.fps
    )
    onsets += sum(false_before.values())
    judged += clean_before
    by_code.update(false_before)
    rate = onsets / max(1, judged) * 10_000
    print(
        f"\nclean video: {onsets} false alarm onsets in {judged} frames = {rate:.2f} per "
        f"10,000 frames (target <= 1)" + (f"; by code: {dict(by_code)}" if by_code else "")
    )
    if args.motion_seeds <= 0:
        return
    mf = motion_f(args.motion_seeds, 150, args.width, args.height, args.fps)
    print(f"\nmotion, pixel level on {args.motion_seeds} busy sequences with light changes:")
    for name, (p, r, f) in mf.items():
        print(f"  {name:14s} precision {p:.3f} recall {r:.3f} F {f:.3f}")
    ratio = mf["vision.motion"][2] / max(1e-9, mf["MOG2 full-res"][2])
    print(f"  F ratio vision.motion / MOG2 = {ratio:.2f}")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
