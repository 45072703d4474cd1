"""Camera snapshots: real JPEGs of a textured scene, each injected fault visibly present."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from simulators.fleet_model import SNAPSHOT_FAULTS
from simulators.fleet_snapshots import SnapshotMaker
from vision.faults import FAULT_CODES

NOON = 1_767_240_000.0  # 2026-01-01 04:00 UTC = 12:00 in China


@pytest.fixture(scope="module")
def maker() -> SnapshotMaker:
    return SnapshotMaker(seed=11, size=(320, 180))


def decode(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img.astype(np.float32)


def sharpness(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var())


def test_fault_names_are_the_vision_packages() -> None:
    assert set(SNAPSHOT_FAULTS) <= set(FAULT_CODES)


def test_snapshots_are_jpegs_of_a_textured_scene(maker: SnapshotMaker) -> None:
    data = maker.jpeg(3, NOON)
    assert data[:3] == b"\xff\xd8\xff"
    img = decode(data)
    assert img.shape == (180, 320, 3)
    assert img.std() > 20 and sharpness(img) > 50  # not a flat or blank picture
    assert maker.jpeg(3, NOON + 600) != data  # the scene lives: movers and noise change
    assert np.abs(decode(maker.jpeg(4, NOON)) - img).mean() > 10  # another camera, another view


def test_each_fault_is_visible(maker: SnapshotMaker) -> None:
    base = decode(maker.jpeg(5, NOON))
    grey = cv2.cvtColor(base, cv2.COLOR_BGR2GRAY)

    def faulty(name: str) -> np.ndarray:
        return decode(maker.jpeg(5, NOON, name))

    assert faulty("too_dark").mean() < 0.3 * base.mean()
    assert faulty("too_bright").mean() > min(230, 1.6 * base.mean())
    assert sharpness(faulty("blur")) < 0.2 * sharpness(base)
    cast = faulty("colour_cast").reshape(-1, 3).mean(axis=0)
    assert cast.max() - cast.min() > 60
    assert faulty("occlusion")[:120].std() < 0.3 * base[:120].std()
    snow = cv2.cvtColor(faulty("snow_noise"), cv2.COLOR_BGR2GRAY)
    assert (
        np.abs(snow - cv2.GaussianBlur(snow, (5, 5), 0)).mean()
        > 2 * np.abs(grey - cv2.GaussianBlur(grey, (5, 5), 0)).mean()
    )
    stripes = cv2.cvtColor(faulty("stripes"), cv2.COLOR_BGR2GRAY).mean(axis=1) - grey.mean(axis=1)
    assert stripes.std() > 15
    moved = faulty("scene_change")
    assert np.abs(moved - base).mean() > 25


def test_a_frozen_camera_repeats_identical_bytes(maker: SnapshotMaker) -> None:
    first = maker.jpeg(6, NOON, "frozen")
    assert maker.jpeg(6, NOON + 3600, "frozen") == first
    assert maker.jpeg(6, NOON + 3600) != first


def test_night_pictures_are_darker(maker: SnapshotMaker) -> None:
    midnight = NOON + 12 * 3600
    assert decode(maker.jpeg(7, midnight)).mean() < 0.7 * decode(maker.jpeg(7, NOON)).mean()


def test_unknown_fault_is_refused(maker: SnapshotMaker) -> None:
    with pytest.raises(ValueError, match="fault: 'fire'"):
        maker.jpeg(1, NOON, "fire")
