"""One camera's analysis chain: frame -> motion -> zones/tripwires -> quality -> analytics events.

Which events go out (docs/mqtt-analytics.md): quality when the set of active faults changes
and as a heartbeat every `quality_report_s`; motion when it starts, then at most every
`motion_interval_s` while it lasts, and once with share 0 when it stops; every zone,
tripwire and dwell event.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np
from pydantic import BaseModel, Field

from hardware.contract.analytics import FaultScore, MotionEvent, QualityEvent
from vision.frames import Frame, Prepared, prepare
from vision.geometry import Polygon
from vision.motion import MotionConfig, MotionDetector
from vision.privacy import PrivacyMask
from vision.quality import QualityAnalyzer, QualityConfig, QualityReport
from vision.reference import Reference
from vision.zones import Tripwire, Zone, ZoneEngine

THUMB_WIDTH = 320


class CameraConfig(BaseModel):
    """What the vision worker does with one camera (geometry is normalised, see vision.geometry)."""

    id: str = Field(pattern=r"^[0-9]{20}$", description="GB/T 28181 device id")
    source: str | None = Field(
        default=None, description="rtsp://, http(s):// or a file; none: JPEG snapshots over MQTT"
    )
    fps: float = Field(default=5.0, gt=0, le=30)
    privacy: list[Polygon] = Field(default_factory=list)
    motion_include: list[Polygon] = Field(default_factory=list)
    motion_exclude: list[Polygon] = Field(default_factory=list)
    zones: list[Zone] = Field(default_factory=list)
    tripwires: list[Tripwire] = Field(default_factory=list)
    motion: bool = True
    quality_every: int = Field(default=1, ge=1, description="diagnose every n-th frame")
    quality_report_s: float = Field(default=60.0, gt=0)
    motion_interval_s: float = Field(default=1.0, ge=0)
    min_motion_share: float = Field(default=0.0005, ge=0, le=1)

    @property
    def privacy_mask(self) -> PrivacyMask:
        return PrivacyMask(polygons=self.privacy)


Event = BaseModel


def thumbnail_b64(
    image: np.ndarray,
    width: int = THUMB_WIDTH,
    quality: int = 70,
    faults: list[FaultScore] | None = None,
) -> str:
    """A small JPEG of an (already masked) frame, base64; with `faults`, the evidence: each
    fault's affected area outlined and every fault's code and score written on the picture."""
    h, w = image.shape[:2]
    if w > width:
        image = cv2.resize(
            image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA
        )
    if faults:
        image = mark_faults(image, faults)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the thumbnail")
    return base64.b64encode(buf.tobytes()).decode()


def mark_faults(image: np.ndarray, faults: list[FaultScore]) -> np.ndarray:
    """The evidence picture: a copy of a small BGR (or grey) frame with each fault's area
    outlined in red, and a caption strip below it with every fault's code and score.

    Nothing is written over the picture outside fault areas, so privacy-masked parts stay
    black."""
    img = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    img = img.copy()
    h, w = img.shape[:2]
    red, white = (40, 40, 230), (255, 255, 255)
    for f in faults:
        if f.area is not None:
            x, y, bw, bh = f.area
            p0 = (int(x * w), int(y * h))
            p1 = (min(w - 1, int((x + bw) * w)), min(h - 1, int((y + bh) * h)))
            cv2.rectangle(img, p0, p1, red, 2)
    line = 16
    strip = np.zeros((line * len(faults) + 4, w, 3), np.uint8)
    for k, f in enumerate(faults):
        where = "marked area" if f.area is not None else "whole picture"
        label = f"{f.code} {f.score:.2f} >= {f.threshold:.2f} ({where})"
        cv2.putText(strip, label, (4, line * (k + 1) - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, white, 1)
    return np.vstack([img, strip])


class CameraPipeline:
    """Per-camera state and the events one frame causes."""

    def __init__(
        self,
        config: CameraConfig,
        quality: QualityConfig | None = None,
        motion: MotionConfig | None = None,
        reference: Reference | None = None,
    ) -> None:
        self.cfg = config
        self.motion = MotionDetector(motion, config.motion_include, config.motion_exclude)
        self.zones = ZoneEngine(config.zones, config.tripwires)
        self.quality = QualityAnalyzer(quality, reference, config.privacy)
        self.frames = 0
        self.last_report: QualityReport | None = None
        self._last_quality_sent: float | None = None
        self._motion_on = False
        self._last_motion_sent = -1e18
        self._last_image: np.ndarray | None = None

    def approve_change(self) -> None:
        """The operator accepted the camera's new view (relearn reference and background)."""
        self.quality.approve_change()
        self.motion.reset()

    def process(self, frame: Frame) -> list[Event]:
        """Analyse one (privacy-masked) frame."""
        return self.process_prepared(prepare(frame), frame.image)

    def process_prepared(self, p: Prepared, image: np.ndarray | None = None) -> list[Event]:
        """Analyse a frame already reduced to its analysis images."""
        self.frames += 1
        self._last_image = image
        events: list[Event] = []
        moving_px = None
        if self.cfg.motion:
            r = self.motion.update(p)
            if r.ready:
                moving_px = None if r.global_change else self.motion.raw_mask
                colour = image if image is not None and image.ndim == 3 else p.colour
                events += self.zones.update(
                    p.ts, r.boxes, p.full_w, p.full_h, p.small, self.motion.raw_mask, colour
                )
                moving = bool(r.boxes) and r.share >= self.cfg.min_motion_share
                due = p.ts - self._last_motion_sent >= self.cfg.motion_interval_s
                if moving and (not self._motion_on or due):
                    events.append(
                        MotionEvent(
                            ts=p.ts,
                            share=r.share,
                            boxes=r.boxes,
                            frame_w=p.full_w,
                            frame_h=p.full_h,
                        )
                    )
                    self._last_motion_sent = p.ts
                elif not moving and self._motion_on:
                    events.append(
                        MotionEvent(
                            ts=p.ts, share=0.0, boxes=[], frame_w=p.full_w, frame_h=p.full_h
                        )
                    )
                self._motion_on = moving
        if (self.frames - 1) % self.cfg.quality_every == 0:
            rep = self.quality.update(p, moving_px)
            q = self._quality_event(rep, p)
            if q is not None:
                events.append(q)
        return events

    def no_frame(self, ts: float, reason: str | None = None) -> list[Event]:
        """The source had nothing at ts; becomes signal loss after the quality timeout.

        `reason` (why the source has no picture) is published with the signal loss."""
        self._last_image = None  # the last good picture is not evidence of a lost signal
        rep = self.quality.no_frame(ts, reason)
        q = self._quality_event(rep, None)
        return [q] if q is not None else []

    def _quality_event(self, rep: QualityReport, p: Prepared | None) -> QualityEvent | None:
        self.last_report = rep
        last = self._last_quality_sent
        due = last is None or rep.ts - last >= self.cfg.quality_report_s
        if not (rep.changed or due):
            return None
        if last is None and rep.intact and not rep.reference_ready:
            return None  # nothing to say until the camera has been learned
        self._last_quality_sent = rep.ts
        thumb = None
        if not rep.intact and rep.changed:
            img = self._last_image
            if img is None and p is not None:
                img = p.colour if p.colour is not None else p.q
            if img is not None:
                thumb = thumbnail_b64(img, faults=rep.faults)
        return rep.to_event(thumb)
