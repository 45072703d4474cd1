"""Detection quality of vision/ on labelled generated video: per-fault recall/precision, false
alarms on clean video, motion F-measure against OpenCV MOG2 on the same frames.

    .venv/bin/python -m bench.vision_quality [--seeds 20] [--clean-frames 10000] [--width 640]

A fault counts as detected when its code is active within `--window` frames (default 10 = 2 s
at 5 fps) of the frame it starts. A false alarm is a fault turning on in a clean stretch (a
clean sequence after the reference is learned, or a faulty sequence before its fault starts).
Precision of a code = its onsets while that fault is injected / all its onsets anywhere.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.faults import FAULT_CODES
from vision.frames import Frame, prepare
from vision.motion import MotionDetector
from vision.quality import QualityAnalyzer
from vision.synth import LIGHT_EVENTS, SynthConfig, SynthSequence

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
    args = ap.parse_args()
    cv2.setNumThreads(1)
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
