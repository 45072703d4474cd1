"""One camera's dying decoder never delays another's frames, and says why it has no picture."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from hardware.contract.analytics import QualityEvent, from_payload
from vision.pipeline import CameraConfig
from vision.worker import VisionWorker

HERE = Path(__file__).resolve().parent
CRASHERS = str(HERE / "vision_crashers.py")
REAL = HERE.parent / "data" / "video" / "indoor_hall.mp4"
HEALTHY, CRASHING = "36012100001320000011", "36012100001320000012"


def _short_video(path: Path) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (160, 120))
    for i in range(10):
        w.write(np.full((120, 160, 3), 60 + 10 * i, np.uint8))
    w.release()


def test_a_crash_looping_neighbour_costs_the_healthy_camera_no_frame(tmp_path: Path) -> None:
    crash = tmp_path / "crash.avi"
    _short_video(crash)
    published: list[tuple[str, bytes]] = []
    worker = VisionWorker(
        [
            CameraConfig(id=HEALTHY, source=str(REAL), fps=1),
            CameraConfig(id=CRASHING, source=str(crash), fps=1),
        ],
        lambda t, p: published.append((t, p)),
        stats_s=60,
        openers={CRASHING: f"{CRASHERS}:abort_after_two"},
    )
    healthy, crashing = worker.streams
    # Serve until the neighbour has crashed and been restarted twice (each fresh child gives
    # two frames, then aborts) and the healthy camera has had its frames meanwhile.
    for _ in range(6000):
        wait = worker._process_streams()
        if crashing.src.restarts >= 2 and healthy.served >= 6:
            break
        time.sleep(min(wait, 0.05))
    worker.close()
    assert crashing.src.restarts >= 2, crashing.src.last_error
    assert healthy.served >= 6
    # Restarts happened on the worker's own loop, and the healthy camera lost no frame to them.
    assert healthy.skipped == 0, f"healthy camera skipped {healthy.skipped} frames"
    lost = [
        e
        for t, p in published
        if t == f"gw/v1/{CRASHING}/analytics"
        for e in [from_payload(p)]
        if isinstance(e, QualityEvent) and any(f.code == "signal_loss" for f in e.faults)
    ]
    assert lost and all(e.reason for e in lost)
    assert any(e.reason == "decoder died: SIGABRT" for e in lost)
