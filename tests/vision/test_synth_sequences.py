"""The labelled sequence generator: deterministic, labelled, every fault injectable."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.video import SynthConfig, SynthSequence
from vision.faults import FAULT_CODES


def _frames(**kw):
    return list(SynthSequence(SynthConfig(width=320, height=180, n_frames=30, **kw)))


def test_same_seed_same_frames_other_seed_differs() -> None:
    a = _frames(seed=3)
    b = _frames(seed=3)
    c = _frames(seed=4)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[5].image, c[5].image)


@pytest.mark.parametrize("fault", FAULT_CODES)
def test_fault_labelled_from_its_start_frame(fault: str) -> None:
    frames = _frames(seed=1, fault=fault, fault_start=12)
    assert all(not f.faults for f in frames[:12])
    assert all(f.faults == {fault} for f in frames[12:])
    clean = _frames(seed=1, fault=None)
    # After the start the fault must change the picture.
    after = frames[20].image
    if fault == "signal_loss" and after is None:
        return
    assert after is not None
    assert not np.array_equal(after, clean[20].image)


def test_motion_mask_matches_boxes() -> None:
    frames = _frames(seed=2, with_masks=True, people_per_min=120, vehicles_per_min=60)
    seen = 0
    for f in frames:
        assert f.mask is not None
        for x, y, w, h in f.boxes:
            assert f.mask[y : y + h, x : x + w].any()
            seen += 1
        outside = f.mask.copy()
        for x, y, w, h in f.boxes:
            outside[y : y + h, x : x + w] = 0
        assert not outside.any()
    assert seen > 0


def test_frozen_repeats_pixels_and_may_stall_pts() -> None:
    frames = _frames(seed=5, fault="frozen", fault_start=10, fault_variant="pts_stalled")
    assert all(np.array_equal(frames[9].image, f.image) for f in frames[10:])
    assert len({f.pts for f in frames[9:]}) == 1
    moving = _frames(seed=5, fault="frozen", fault_start=10, fault_variant="pixels")
    assert len({f.pts for f in moving[9:]}) == len(moving) - 9


def test_unknown_fault_is_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        SynthConfig(fault="gremlins")
