"""The vision worker: many cameras at their own rate, JPEG snapshots from MQTT, results to MQTT.

Stream and file cameras are read through `IsolatedCapture` on a schedule (each at its own
fps). Snapshot cameras publish JPEGs on gw/v1/{id}/snapshot; the worker decodes them in an
isolated child at 1/4 size and analyses each. Results go to gw/v1/{id}/analytics (QoS 1).
Every `stats_s` the worker reports its own throughput and lag, and says when it cannot keep
up (frames skipped, or frames served later than one period), on the log and on
gw/v1/hub/vision/{worker} (retained JSON).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from hardware.contract import topics
from hardware.contract.analytics import to_payload
from vision.frames import prepare_reduced
from vision.pipeline import CameraConfig, CameraPipeline
from vision.quality import QualityConfig
from vision.reference import Reference
from vision.sources import IsolatedCapture, SnapshotDecoder, jpeg_size

log = logging.getLogger("gridwatch.vision")

Publish = Callable[[str, bytes], None]
SaveReference = Callable[[str, bytes], None]
SNAPSHOT_TOPIC = topics.inbound_filters((topics.SNAPSHOT,))[0]


class WorkerStats(BaseModel):
    """What the worker says about itself every `stats_s`."""

    ts: float
    worker: str
    cameras: int
    frames_per_s: float
    snapshots_per_s: float
    lag_ms_mean: float
    lag_ms_p95: float
    skipped: int
    snapshots_dropped: int
    behind: bool
    message: str


@dataclass
class _Stream:
    cfg: CameraConfig
    pipe: CameraPipeline
    src: IsolatedCapture
    period: float
    due: float
    saved_ref: bool = False
    served: int = 0  # frames analysed, over the worker's life
    skipped: int = 0  # due frames skipped because the worker was late, over its life


@dataclass
class _Counters:
    frames: int = 0
    snapshots: int = 0
    skipped: int = 0
    dropped: int = 0
    lags: list[float] = field(default_factory=list)


class VisionWorker:
    """Runs the cameras; see the module docstring."""

    def __init__(
        self,
        cameras: list[CameraConfig],
        publish: Publish,
        quality: QualityConfig | None = None,
        references: dict[str, Reference] | None = None,
        save_reference: SaveReference | None = None,
        snapshot_defaults: CameraConfig | None = None,
        accept_unknown_snapshots: bool = True,
        stats_s: float = 10.0,
        name: str | None = None,
        shard: tuple[int, int] = (0, 1),
        openers: dict[str, str] | None = None,
    ) -> None:
        self.publish = publish
        self.quality_cfg = quality
        self.references = references or {}
        self.save_reference = save_reference
        self.stats_s = stats_s
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.accept_unknown = accept_unknown_snapshots
        self.shard = shard
        cameras = [c for c in cameras if self.owns(c.id)]
        self.snapshot_defaults = snapshot_defaults
        now = time.monotonic()
        self.streams: list[_Stream] = []
        self.snap_cfg: dict[str, CameraConfig] = {}
        self.snap_pipes: dict[str, CameraPipeline] = {}
        for c in cameras:
            if c.source:
                opener = (openers or {}).get(c.id, "vision.sources:open_capture")
                src = IsolatedCapture(c.source, mask=c.privacy_mask, opener=opener)
                self.streams.append(_Stream(c, self._pipeline(c), src, 1.0 / c.fps, now))
            else:
                self.snap_cfg[c.id] = c
        self._inbox: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._inbox_lock = threading.Lock()
        self._inbox_event = threading.Event()
        self._decoder: SnapshotDecoder | None = None
        self._count = _Counters()
        self._stats_at = time.monotonic()
        self.last_stats: WorkerStats | None = None
        self.stop_event = threading.Event()

    def owns(self, device_id: str) -> bool:
        """True when this worker's shard (i of n, by a stable hash of the id) has the camera.

        Several workers split the cameras this way, each seeing every snapshot but analysing
        only its own, so a camera's state (background, reference) stays in one process.
        """
        i, n = self.shard
        return n <= 1 or zlib.crc32(device_id.encode()) % n == i

    def _pipeline(self, c: CameraConfig) -> CameraPipeline:
        return CameraPipeline(c, self.quality_cfg, reference=self.references.get(c.id))

    # ---- snapshots (called from the MQTT thread) --------------------------------------------

    def offer_snapshot(self, device_id: str, jpeg: bytes, received: float | None = None) -> None:
        """Queue a snapshot; a newer one from the same camera replaces an unprocessed one."""
        if not self.owns(device_id) or (device_id not in self.snap_cfg and not self.accept_unknown):
            return
        with self._inbox_lock:
            if device_id in self._inbox:
                self._count.dropped += 1
                del self._inbox[device_id]
            self._inbox[device_id] = (jpeg, received if received is not None else time.time())
        self._inbox_event.set()

    def _snapshot_pipeline(self, device_id: str) -> CameraPipeline:
        pipe = self.snap_pipes.get(device_id)
        if pipe is None:
            cfg = self.snap_cfg.get(device_id)
            if cfg is None:
                base = self.snapshot_defaults.model_dump() if self.snapshot_defaults else {}
                base.update(id=device_id, source=None, motion=False)
                cfg = CameraConfig(**base)
                self.snap_cfg[device_id] = cfg
            pipe = self._pipeline(cfg)
            self.snap_pipes[device_id] = pipe
        return pipe

    def _process_snapshots(self, budget: int) -> None:
        for _ in range(budget):
            with self._inbox_lock:
                if not self._inbox:
                    self._inbox_event.clear()
                    return
                device_id, (jpeg, received) = self._inbox.popitem(last=False)
            pipe = self._snapshot_pipeline(device_id)
            if self._decoder is None:
                self._decoder = SnapshotDecoder(reduce=4)
            img = self._decoder.decode(jpeg, mask=pipe.cfg.privacy_mask)
            if img is None:
                events = pipe.no_frame(received)
            else:
                w, h = jpeg_size(jpeg) or (img.shape[1] * 4, img.shape[0] * 4)
                p = prepare_reduced(img, received, None, w, h)
                events = pipe.process_prepared(p, img)
            self._emit(device_id, events)
            self._maybe_save(device_id, pipe)
            self._count.snapshots += 1

    # ---- streams ----------------------------------------------------------------------------

    def _process_streams(self) -> float:
        """Serve every due stream once; returns seconds until the next one is due."""
        now = time.monotonic()
        nxt = now + 0.5
        for s in self.streams:
            if s.due > now:
                nxt = min(nxt, s.due)
                continue
            lag = now - s.due
            # Never block on one camera: a starting, slow or dying decoder answers later.
            frame = s.src.read(timeout=0.05 if s.src.live else 5.0, wait=0.02)
            wall = time.time()
            if frame is not None:
                events = s.pipe.process(frame)
                self._count.frames += 1
                self._count.lags.append(lag)
                s.served += 1
            else:  # connecting, reconnecting, dead: signal loss once the timeout has passed
                why = s.src.last_error or f"no picture yet (source {s.src.status})"
                events = s.pipe.no_frame(wall, why)
            self._emit(s.cfg.id, events)
            self._maybe_save(s.cfg.id, s.pipe)
            s.due += s.period
            if s.due < now - s.period:  # more than a period behind: skip, do not pile up
                missed = int((now - s.due) / s.period)
                self._count.skipped += missed
                s.skipped += missed
                s.due += missed * s.period
            nxt = min(nxt, s.due)
        return max(0.0, nxt - time.monotonic())

    # ---- plumbing ---------------------------------------------------------------------------

    def _emit(self, device_id: str, events: list[BaseModel]) -> None:
        for e in events:
            try:
                self.publish(topics.device_topic(device_id, topics.ANALYTICS), to_payload(e))
            except Exception as exc:  # noqa: BLE001 - a failed publish must not stop analysis
                log.warning("publish for %s failed: %s", device_id, exc)

    def _maybe_save(self, device_id: str, pipe: CameraPipeline) -> None:
        ref = pipe.quality.ref
        if self.save_reference is None or not ref.ready or getattr(pipe, "_ref_saved", False):
            return
        try:
            self.save_reference(device_id, ref.to_bytes())
            pipe._ref_saved = True  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - storage trouble is logged, analysis goes on
            log.warning("saving the reference of %s failed: %s", device_id, exc)

    def approve_change(self, device_id: str) -> bool:
        """Relearn one camera's reference (an operator approved its new view)."""
        pipe = self.snap_pipes.get(device_id) or next(
            (s.pipe for s in self.streams if s.cfg.id == device_id), None
        )
        if pipe is None:
            return False
        pipe.approve_change()
        pipe._ref_saved = False  # type: ignore[attr-defined]
        return True

    def stats(self) -> WorkerStats:
        """Throughput and lag since the last call."""
        now = time.monotonic()
        span = max(1e-6, now - self._stats_at)
        c = self._count
        lags = sorted(c.lags)
        mean = 1000 * sum(lags) / len(lags) if lags else 0.0
        p95 = 1000 * lags[int(0.95 * (len(lags) - 1))] if lags else 0.0
        periods = [s.period for s in self.streams]
        behind = c.skipped > 0 or (bool(periods) and p95 / 1000 > min(periods)) or c.dropped > 0
        msg = "keeping up"
        if behind:
            msg = (
                f"cannot keep up: {c.skipped} frames skipped, {c.dropped} snapshots replaced "
                f"unprocessed, p95 lag {p95:.0f} ms; add workers or lower fps"
            )
        st = WorkerStats(
            ts=time.time(),
            worker=self.name,
            cameras=len(self.streams) + len(self.snap_pipes),
            frames_per_s=round(c.frames / span, 2),
            snapshots_per_s=round(c.snapshots / span, 2),
            lag_ms_mean=round(mean, 1),
            lag_ms_p95=round(p95, 1),
            skipped=c.skipped,
            snapshots_dropped=c.dropped,
            behind=behind,
            message=msg,
        )
        self._count = _Counters()
        self._stats_at = now
        self.last_stats = st
        return st

    def run(self, duration: float | None = None) -> None:
        """Serve cameras until `stop_event` is set (or `duration` seconds passed)."""
        end = time.monotonic() + duration if duration else None
        try:
            while not self.stop_event.is_set():
                wait = self._process_streams() if self.streams else 0.5
                self._process_snapshots(budget=200)
                now = time.monotonic()
                if now - self._stats_at >= self.stats_s:
                    st = self.stats()
                    (log.warning if st.behind else log.info)(
                        "vision %s: %d cameras, %.1f frames/s, %.1f snapshots/s, lag p95 %.0f ms; %s",
                        st.worker,
                        st.cameras,
                        st.frames_per_s,
                        st.snapshots_per_s,
                        st.lag_ms_p95,
                        st.message,
                    )
                    try:
                        self.publish(
                            topics.vision_status_topic(self.name), st.model_dump_json().encode()
                        )
                    except Exception as exc:  # noqa: BLE001
                        log.warning("publishing worker stats failed: %s", exc)
                if end is not None and now >= end:
                    return
                self._inbox_event.wait(min(wait, 0.5))
        finally:
            self.close()

    def close(self) -> None:
        """Stop every decoder child."""
        for s in self.streams:
            s.src.close()
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None


# ---- MQTT ------------------------------------------------------------------------------------


class MqttLink:
    """paho-mqtt 2 client: publishes analytics (QoS 1) and feeds snapshots to a worker."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        client_id: str,
        *,
        subscribe_snapshots: bool = False,
        on_snapshot: Callable[[str, bytes], None] | None = None,
    ) -> None:
        """Connects in the background; the snapshot subscription is decided here, before the
        connection can complete (set afterwards, a fast connect missed it and no snapshot came)."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self._mqtt = mqtt
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(user, password)
        self.connected = threading.Event()
        self.on_snapshot = on_snapshot
        self.subscribe_snapshots = subscribe_snapshots
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.reconnect_delay_set(1, 30)
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None):
        if getattr(rc, "is_failure", False):
            log.error("MQTT connection refused: %s", rc)
            return
        if self.subscribe_snapshots:
            client.subscribe(SNAPSHOT_TOPIC, qos=0)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        parts = msg.topic.split("/")
        if len(parts) == 4 and parts[3] == "snapshot" and self.on_snapshot is not None:
            self.on_snapshot(parts[2], bytes(msg.payload))

    def wait(self, timeout: float = 10.0) -> bool:
        """True once connected."""
        return self.connected.wait(timeout)

    def publish(self, topic: str, payload: bytes) -> None:
        retain = topic.startswith(topics.VISION_PREFIX)
        self.client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def load_cameras(path: str) -> list[CameraConfig]:
    """Camera configs from a JSON file: a list of CameraConfig objects."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read camera list {path}: {exc}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of cameras")
    return [CameraConfig.model_validate(c) for c in data]
