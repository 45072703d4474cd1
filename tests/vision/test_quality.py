"""Video-quality diagnosis on generated sequences: every fault found in time, clean stays intact."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.contract.analytics import QualityEvent, from_payload, to_payload
from simulators.video import LIGHT_EVENTS, SynthConfig, SynthSequence
from vision.faults import FAULT_CODES
from vision.frames import Frame, prepare
from vision.quality import QualityAnalyzer, QualityConfig, QualityReport
from vision.reference import Reference

START, WINDOW = 30, 10  # fault starts at frame 30; must be active within 10 frames (2 s @ 5 fps)


def _run(cfg: SynthConfig, qa: QualityAnalyzer | None = None) -> list[QualityReport]:
    qa = qa or QualityAnalyzer()
    out = []
    for fr in SynthSequence(cfg):
        if fr.image is None:
            out.append(qa.no_frame(fr.ts))
        else:
            out.append(qa.update(prepare(Frame(fr.image, fr.ts, fr.pts))))
    return out


@pytest.mark.parametrize("fault", FAULT_CODES)
@pytest.mark.parametrize("seed", [21, 22])
def test_each_fault_is_found_within_two_seconds(fault: str, seed: int) -> None:
    cfg = SynthConfig(
        n_frames=START + WINDOW,
        seed=seed * 100 + FAULT_CODES.index(fault),
        fault=fault,
        fault_start=START,
        night=seed == 22,
        jpeg_quality=75 if seed == 22 else None,
        light_events=LIGHT_EVENTS,
    )
    reports = _run(cfg)
    assert all(r.intact for r in reports[15:START]), [r.codes() for r in reports[15:START]]
    found = [fault in r.codes() for r in reports[START:]]
    assert any(found), [r.scores.get(fault) for r in reports[START:]]
    assert reports[-1].intact is False


@pytest.mark.parametrize("seed", [31, 32, 33])  # one case each, so the cores share them
def test_clean_busy_streets_stay_intact(seed: int) -> None:
    onsets = 0
    frames = 0
    cfg = SynthConfig(
        n_frames=300,
        seed=seed,
        night=seed == 33,
        jpeg_quality=80,
        light_events=LIGHT_EVENTS,
        people_per_min=40,
        vehicles_per_min=20,
    )
    reports = _run(cfg)
    prev: set[str] = set()
    for r in reports[15:]:
        now = set(r.codes())
        onsets += len(now - prev)
        prev = now
        frames += 1
    assert onsets == 0, onsets
    assert frames == 285


def test_report_is_the_documented_payload() -> None:
    cfg = SynthConfig(n_frames=40, seed=41, fault="colour_cast", fault_start=20, light_events=())
    rep = _run(cfg)[-1]
    event = rep.to_event(thumbnail_jpeg_b64="AAAA")
    raw = to_payload(event)
    back = from_payload(raw)
    assert isinstance(back, QualityEvent)
    assert back.type == "quality" and back.intact is False
    (fault,) = back.faults
    assert fault.code == "colour_cast" and fault.score >= fault.threshold


def test_frozen_by_stalled_timestamps_and_pixels_need_pts_option() -> None:
    stalled = SynthConfig(
        n_frames=40,
        seed=42,
        fault="frozen",
        fault_start=20,
        fault_variant="pts_stalled",
        light_events=(),
    )
    assert any("frozen" in r.codes() for r in _run(stalled))
    # A static H.264 scene can decode to identical pixels while its timestamps advance: with
    # frozen_pixels_need_pts the pixels alone do not make it frozen.
    live = SynthConfig(
        n_frames=40,
        seed=42,
        fault="frozen",
        fault_start=20,
        fault_variant="pixels",
        light_events=(),
    )
    strict = QualityAnalyzer(QualityConfig(frozen_pixels_need_pts=True))
    assert not any("frozen" in r.codes() for r in _run(live, strict))
    assert any("frozen" in r.codes() for r in _run(live))


def test_dead_source_is_signal_loss_after_the_timeout() -> None:
    qa = QualityAnalyzer(QualityConfig(signal_timeout_s=2.0))
    for fr in SynthSequence(SynthConfig(n_frames=15, seed=43, light_events=())):
        qa.update(prepare(Frame(fr.image, fr.ts, fr.pts)))
    last = 14 / 5.0
    assert qa.no_frame(last + 1.0).intact
    rep = qa.no_frame(last + 2.5)
    assert rep.codes() == ["signal_loss"]


def test_approved_change_is_relearned_as_the_new_normal() -> None:
    cfg = SynthConfig(n_frames=90, seed=44, fault="scene_change", fault_start=20, light_events=())
    qa = QualityAnalyzer()
    seq = list(SynthSequence(cfg))
    reps = [qa.update(prepare(Frame(f.image, f.ts))) for f in seq[:35]]
    assert "scene_change" in reps[-1].codes()
    qa.approve_change()
    reps = [qa.update(prepare(Frame(f.image, f.ts))) for f in seq[35:]]
    assert reps[-1].reference_ready and reps[-1].intact
    assert all(r.intact for r in reps)


def test_saved_reference_diagnoses_a_single_frame() -> None:
    seq = list(
        SynthSequence(
            SynthConfig(n_frames=60, seed=45, fault="blur", fault_start=40, light_events=())
        )
    )
    qa = QualityAnalyzer()
    for f in seq[:20]:
        qa.update(prepare(Frame(f.image, f.ts)))
    blob = qa.ref.to_bytes()
    one = QualityAnalyzer(QualityConfig(on_count=1), reference=Reference.from_bytes(blob))
    assert one.update(prepare(Frame(seq[25].image, seq[25].ts))).intact
    one = QualityAnalyzer(QualityConfig(on_count=1), reference=Reference.from_bytes(blob))
    assert one.update(prepare(Frame(seq[50].image, seq[50].ts))).codes() == ["blur"]
    with pytest.raises(ValueError, match="not a saved camera reference"):
        Reference.from_bytes(b"garbage")


def test_luma_input_skips_colour_but_finds_darkness() -> None:
    import cv2

    cfg = SynthConfig(n_frames=40, seed=46, fault="too_dark", fault_start=20, light_events=())
    qa = QualityAnalyzer()
    reps = []
    for fr in SynthSequence(cfg):
        luma = cv2.cvtColor(fr.image, cv2.COLOR_BGR2GRAY)
        reps.append(qa.update(prepare(Frame(luma, fr.ts))))
    assert reps[-1].codes() == ["too_dark"]
    assert all(r.scores["colour_cast"] == 0.0 for r in reps)
    assert np.isfinite(list(reps[-1].scores.values())).all()
