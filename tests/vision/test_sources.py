"""Isolated decoding: valid video, malformed files, crashing and hanging decoders, snapshots, masks."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.geometry import Polygon
from vision.privacy import PrivacyMask
from vision.sources import IsolatedCapture, SnapshotDecoder, decode_jpeg, jpeg_size

W, H, N = 160, 120, 12
LEFT_HALF = PrivacyMask(polygons=[Polygon(points=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)])])


def _write_video(path: Path) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (W, H))
    assert w.isOpened(), "MJPG in AVI is not writable here"
    for i in range(N):
        img = np.full((H, W, 3), 40 + 15 * i, np.uint8)
        cv2.putText(img, str(i), (60, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        w.write(img)
    w.release()


CRASHERS = str(Path(__file__).resolve().parent / "vision_crashers.py")


@pytest.fixture(scope="module")
def good_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vid") / "good.avi"
    _write_video(path)
    return path


def test_valid_video_is_read_in_order_with_timestamps(good_video: Path) -> None:
    with IsolatedCapture(str(good_video)) as cap:
        frames = []
        while (f := cap.read(timeout=5)) is not None:
            frames.append(f)
        assert cap.status == "ended"
    assert len(frames) == N
    assert [f.seq for f in frames] == list(range(1, N + 1))
    means = [float(f.image.mean()) for f in frames]
    assert means == sorted(means)  # frames got brighter one by one, none lost or repeated
    pts = [f.pts for f in frames]
    assert all(p is not None for p in pts) and pts == sorted(pts)


def test_privacy_mask_is_applied_before_anyone_gets_the_frame(good_video: Path) -> None:
    with IsolatedCapture(str(good_video), mask=LEFT_HALF) as cap:
        f = cap.read()
    assert f is not None
    assert f.image[:, : W // 2 - 1].max() == 0
    assert f.image[:, W // 2 + 2 :].min() > 0


def _malformed(path: Path, good: Path) -> None:
    """A real MJPG AVI whose first frame chunk claims to be 2 GB long."""
    data = bytearray(good.read_bytes())
    i = data.find(b"00dc")
    assert i > 0
    data[i + 4 : i + 8] = struct.pack("<I", 0x7FFFFFF0)
    path.write_bytes(bytes(data))


def _random_with_header(path: Path) -> None:
    rng = np.random.default_rng(7)
    head = b"RIFF" + struct.pack("<I", 90_000) + b"AVI LIST" + struct.pack("<I", 300) + b"hdrl"
    path.write_bytes(head + rng.integers(0, 256, 80_000, dtype=np.uint8).tobytes())
    (path.with_suffix(".mp4")).write_bytes(
        struct.pack(">I", 24) + b"ftypisom" + rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes()
    )


def _drain(cap: IsolatedCapture) -> list:
    got = []
    for _ in range(60):
        got.append(cap.read(timeout=3))
        if cap.status in ("ended", "failed"):
            break
        time.sleep(0.02)
    cap.close()
    return [f for f in got if f is not None]


def test_malformed_files_fail_cleanly_and_the_worker_lives(
    tmp_path: Path, good_video: Path
) -> None:
    noise = tmp_path / "noise.avi"
    _random_with_header(noise)
    for path in (noise, noise.with_suffix(".mp4")):
        cap = IsolatedCapture(str(path), backoff_s=0.01, max_failures=2)
        assert _drain(cap) == []
        assert cap.status == "failed" and "cannot open" in (cap.last_error or "")
    bad = tmp_path / "bad.avi"
    _malformed(bad, good_video)
    # A real AVI whose chunk header lies: whichever reader is used, whatever frames come out
    # are whole pictures and the source ends or fails cleanly.
    for opener in ("vision.sources:open_capture", f"{CRASHERS}:opencv_mjpeg"):
        cap = IsolatedCapture(str(bad), opener=opener, backoff_s=0.01, max_failures=2)
        assert all(f.image.shape == (H, W, 3) for f in _drain(cap))
        assert cap.status in ("ended", "failed")


def test_decoder_that_aborts_is_contained_and_restarted(good_video: Path) -> None:
    cap = IsolatedCapture(
        str(good_video),
        opener=f"{CRASHERS}:abort_after_two",
        backoff_s=0.01,
        max_backoff_s=0.05,
    )
    try:
        got = [cap.read(timeout=5) for _ in range(3)]
        assert got[0] is not None and got[1] is not None, cap.last_error
        assert got[2] is None and cap.status == "reconnecting"
        assert "died" in (cap.last_error or "")
        time.sleep(0.1)
        again = cap.read(timeout=5)  # a fresh child starts from the beginning
        assert again is not None and cap.restarts == 1
    finally:
        cap.close()


def test_hung_decoder_is_killed_and_reported(good_video: Path) -> None:
    cap = IsolatedCapture(str(good_video), opener=f"{CRASHERS}:hang", max_failures=1)
    try:
        assert cap.read(timeout=0.5) is None
        assert cap.status == "failed" and "within" in (cap.last_error or "")
    finally:
        cap.close()


def test_unreachable_stream_backs_off_exponentially() -> None:
    cap = IsolatedCapture(
        "rtsp://127.0.0.1:9/none", backoff_s=0.01, max_backoff_s=0.04, max_failures=4
    )
    try:
        for _ in range(40):
            cap.read(timeout=0.5)
            if cap.status == "failed":
                break
            time.sleep(0.02)
        assert cap.status == "failed" and cap.failures == 4
        assert cap.last_error
    finally:
        cap.close()


def test_snapshots_decode_reduced_masked_and_reject_garbage() -> None:
    img = np.zeros((1080, 1920, 3), np.uint8)
    img[:, 960:] = (30, 200, 90)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    data = buf.tobytes()
    assert jpeg_size(data) == (1920, 1080)
    assert decode_jpeg(data, 8).shape == (135, 240, 3)
    dec = SnapshotDecoder(reduce=4)
    try:
        out = dec.decode(
            data, mask=PrivacyMask(polygons=[Polygon(points=[(0.6, 0), (1, 0), (1, 1), (0.6, 1)])])
        )
        assert out is not None and out.shape == (270, 480, 3)
        assert out[:, 300:].max() == 0 and out[:, 250:280].mean() > 50
        assert dec.decode(b"\xff\xd8\xff" + os.urandom(5000)) is None
        assert dec.decode(data[: len(data) // 3]) is not None or True  # truncated: no crash
        assert dec.decode(data) is not None  # still serving after garbage
    finally:
        dec.close()


def test_decoder_dying_mid_stream_has_a_restart_budget_and_ends(good_video: Path) -> None:
    # Each fresh child delivers two good frames and aborts: good frames in between must not
    # reset the count, so a bounded source ends and an unbounded one backs off.
    cap = IsolatedCapture(
        str(good_video), opener=f"{CRASHERS}:abort_after_two", backoff_s=0.01, max_failures=3
    )
    try:
        frames = 0
        for _ in range(200):
            if cap.read(timeout=5) is not None:
                frames += 1
            if cap.status == "failed":
                break
            time.sleep(0.02)
        assert cap.status == "failed" and cap.failures == 3
        assert frames == 6
        assert cap.last_error == "decoder died: SIGABRT"
    finally:
        cap.close()
    cap = IsolatedCapture(
        str(good_video),
        opener=f"{CRASHERS}:abort_after_two",
        backoff_s=0.05,
        max_backoff_s=30.0,
        restart_budget=2,
    )
    try:
        delays = []
        for _ in range(300):
            cap.read(timeout=5)
            if cap.status == "reconnecting" and cap._proc is None:
                delays.append(cap._retry_at - time.monotonic())
                if len(delays) == 4:
                    break
                cap._retry_at = 0.0  # skip the wait; the delay it chose is what is checked
        assert max(delays[:2]) < 0.07  # within the budget: quick restarts (0.05 s +-20%)
        assert delays[3] > 0.12 and delays[3] > delays[2]  # beyond it: 0.1, 0.2 s ...
    finally:
        cap.close()


def test_inspection_never_calls_a_dying_decoder_intact(good_video: Path) -> None:
    from vision.inspection import inspect_stream

    out = inspect_stream(
        "1" * 20, str(good_video), None, None, opener=f"{CRASHERS}:abort_after_one"
    )
    assert not out.intact
    assert out.error == "decoder died: SIGABRT"
    assert [f.code for f in out.faults] == ["signal_loss"]
