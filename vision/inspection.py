"""Inspection rounds (巡检): one look at every camera of a region, diagnosed by several processes.

Each camera with a stream URL is opened in a pool process (which decodes through its own
isolated child), a few frames ~0.3 s apart are taken and diagnosed against the camera's stored
reference when there is one (absolute checks only otherwise). Cameras without a stream URL are
judged on the next JPEG snapshot they publish on MQTT (signal loss if none comes in time).
Every result is committed as it arrives, so an interrupted round resumes where it stopped.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context

from pydantic import BaseModel, Field

from hardware.contract.analytics import FaultScore
from vision.frames import Frame, prepare, prepare_reduced
from vision.pipeline import thumbnail_b64
from vision.privacy import PrivacyMask
from vision.quality import QualityAnalyzer, QualityConfig
from vision.reference import Reference
from vision.sources import IsolatedCapture, SnapshotDecoder, jpeg_size

FRAMES_PER_CAMERA = 3
FRAME_GAP_S = 0.3


class InspectionOutcome(BaseModel):
    """One camera's verdict in a round."""

    device_id: str
    intact: bool
    faults: list[FaultScore] = Field(default_factory=list)
    thumbnail_jpeg_b64: str | None = None
    error: str | None = None


def _analyzer(ref_blob: bytes | None) -> QualityAnalyzer:
    ref = None
    if ref_blob:
        try:
            ref = Reference.from_bytes(ref_blob)
        except ValueError:
            ref = None
    # One look: no debouncing; frozen = identical over the ~0.6 s the look lasts.
    return QualityAnalyzer(QualityConfig(on_count=1, frozen_s=0.5, frozen_min_repeats=2), ref)


def _lost(device_id: str, why: str) -> InspectionOutcome:
    return InspectionOutcome(
        device_id=device_id,
        intact=False,
        error=why,
        faults=[FaultScore(code="signal_loss", score=1.0, threshold=1.0)],
    )


def inspect_stream(
    device_id: str,
    url: str,
    ref_blob: bytes | None,
    privacy_json: str | None,
    timeout_s: float = 8.0,
    opener: str = "vision.sources:open_capture",
) -> InspectionOutcome:
    """Look at a stream camera (runs in a pool process)."""
    mask = PrivacyMask.model_validate_json(privacy_json) if privacy_json else PrivacyMask()
    cap = IsolatedCapture(url, mask=mask, max_failures=1, opener=opener)
    frames: list[Frame] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(frames) < FRAMES_PER_CAMERA and time.monotonic() < deadline:
            f = cap.read(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            if f is not None:
                frames.append(f)
                time.sleep(FRAME_GAP_S)
            elif cap.status in ("failed", "ended"):
                break
    finally:
        cap.close()
    if not frames:
        return _lost(device_id, cap.last_error or "no frame")
    if cap.failures or cap.last_error:
        # The decoder died (or failed) during the look, even after delivering frames: an
        # error with its reason ("decoder died: SIGABRT"), never "intact".
        return _lost(device_id, cap.last_error or "decoder failed")
    qa = _analyzer(ref_blob)
    rep = None
    for f in frames:
        rep = qa.update(prepare(f))
    assert rep is not None
    thumb = thumbnail_b64(frames[-1].image, faults=rep.faults) if not rep.intact else None
    return InspectionOutcome(
        device_id=device_id, intact=rep.intact, faults=rep.faults, thumbnail_jpeg_b64=thumb
    )


def inspect_jpegs(
    device_id: str, jpegs: list[bytes], ref_blob: bytes | None, privacy_json: str | None
) -> InspectionOutcome:
    """Judge a snapshot camera on its JPEG(s) (runs in a pool process; decodes isolated)."""
    mask = PrivacyMask.model_validate_json(privacy_json) if privacy_json else PrivacyMask()
    dec = SnapshotDecoder(reduce=4)
    try:
        qa = _analyzer(ref_blob)
        rep, img = None, None
        for k, data in enumerate(jpegs):
            img = dec.decode(data, mask=mask)
            if img is None:
                return _lost(device_id, "snapshot does not decode as JPEG")
            w, h = jpeg_size(data) or (img.shape[1] * 4, img.shape[0] * 4)
            rep = qa.update(prepare_reduced(img, time.time() + k, None, w, h))
    finally:
        dec.close()
    if rep is None or img is None:
        return _lost(device_id, "no snapshot")
    thumb = thumbnail_b64(img, faults=rep.faults) if not rep.intact else None
    return InspectionOutcome(
        device_id=device_id, intact=rep.intact, faults=rep.faults, thumbnail_jpeg_b64=thumb
    )


class SnapshotCollector:
    """Takes the first snapshot each wanted camera publishes (fed from an MQTT thread)."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = set(wanted)
        self.ready: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._lock = threading.Lock()

    def offer(self, device_id: str, jpeg: bytes) -> None:
        with self._lock:
            if device_id not in self.wanted:
                return
            self.wanted.discard(device_id)
        self.ready.put((device_id, jpeg))


Record = Callable[[InspectionOutcome], None]


def run_round(
    streams: list[tuple[str, str]],
    snapshot_ids: list[str],
    refs: dict[str, bytes],
    privacy: dict[str, str],
    record: Record,
    processes: int = 4,
    snapshot_wait_s: float = 60.0,
    collector: SnapshotCollector | None = None,
    stream_timeout_s: float = 8.0,
) -> int:
    """Inspect every camera once, calling `record` as each result arrives; returns the count.

    `streams` are (device id, url); `snapshot_ids` are judged on the snapshots that arrive in
    `collector` within `snapshot_wait_s` (the caller feeds it from its MQTT subscription).
    """
    done = 0
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, processes), mp_context=ctx) as pool:
        running: dict[Future[InspectionOutcome], str] = {}
        for dev, url in streams:
            running[
                pool.submit(
                    inspect_stream, dev, url, refs.get(dev), privacy.get(dev), stream_timeout_s
                )
            ] = dev
        waiting = set(snapshot_ids)
        deadline = time.monotonic() + snapshot_wait_s
        while running or waiting:
            if collector is not None:
                while True:
                    try:
                        dev, jpeg = collector.ready.get_nowait()
                    except queue.Empty:
                        break
                    if dev in waiting:
                        waiting.discard(dev)
                        running[
                            pool.submit(inspect_jpegs, dev, [jpeg], refs.get(dev), privacy.get(dev))
                        ] = dev
            if waiting and (collector is None or time.monotonic() >= deadline):
                for dev in sorted(waiting):
                    record(_lost(dev, f"no snapshot within {snapshot_wait_s:.0f} s"))
                    done += 1
                waiting.clear()
            if not running:
                time.sleep(0.05)
                continue
            finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in finished:
                dev = running.pop(fut)
                try:
                    out = fut.result()
                except Exception as exc:  # noqa: BLE001 - a broken look is a fault, not a crash
                    out = _lost(dev, f"inspection failed: {exc}")
                record(out)
                done += 1
    return done


def thumbnail_bytes(out: InspectionOutcome) -> bytes | None:
    """The evidence thumbnail as JPEG bytes."""
    return base64.b64decode(out.thumbnail_jpeg_b64) if out.thumbnail_jpeg_b64 else None
