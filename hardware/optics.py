"""Camera optics: sensor formats, lenses, field of view, pixel density and DORI ranges (DESIGN §5.4)."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

DoriLevel = Literal["detect", "observe", "recognise", "identify"]
# EN 62676-4 (IEC 62676-4) pixel densities, pixels per metre at the target.
DORI_PPM: dict[str, float] = {
    "detect": 25.0,
    "observe": 62.5,
    "recognise": 125.0,
    "identify": 250.0,
}

MIN_FOCAL_MM = 0.5
MAX_FOCAL_MM = 2000.0
MIN_PIXELS = 16
MAX_PIXELS = 16_384


class OpticsError(ValueError):
    """A lens, sensor or resolution value that cannot be used, naming the field and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: {value!r} is not valid; allowed: {allowed}")


class SensorFormat(BaseModel):
    """An optical format ("1/2.8-inch type") with the active-area size used for FOV maths."""

    model_config = ConfigDict(frozen=True)

    name: str
    width_mm: float
    height_mm: float
    source: str

    @property
    def diagonal_mm(self) -> float:
        return math.hypot(self.width_mm, self.height_mm)


# Active image areas. "1/x-inch" is a legacy tube name, not a size, so each row gives the size
# of the area actually read out and where it comes from:
#  - 4:3 types (1/4, 1/3, 1/2, 1/2.5, 1/1.8, 2/3, 1): the image-size table lens makers publish
#    (Computar/Kowa CCTV lens catalogues; same figures as Wikipedia "Image sensor format").
#  - 16:9 types that CCTV cameras mostly use (1/2.9, 1/2.8, 1/2.7): the 1920x1080 recording area
#    from the sensor datasheets' effective pixel count x unit cell size:
#    Sony IMX323 (1/2.9, 2.8 um), Sony IMX327/IMX307 (1/2.8, 2.9 um), OmniVision OV2710
#    (1/2.7, 3.0 um).
# A camera whose datasheet gives another width can pass `sensor_width_mm` directly.
SENSOR_FORMATS: dict[str, SensorFormat] = {
    f.name: f
    for f in (
        SensorFormat(name="1/4", width_mm=3.6, height_mm=2.7, source="lens-maker table, 4:3"),
        SensorFormat(name="1/3", width_mm=4.8, height_mm=3.6, source="lens-maker table, 4:3"),
        SensorFormat(
            name="1/2.9", width_mm=5.376, height_mm=3.024, source="Sony IMX323, 1920x1080 x 2.8 um"
        ),
        SensorFormat(
            name="1/2.8",
            width_mm=5.568,
            height_mm=3.132,
            source="Sony IMX327/IMX307, 1920x1080 x 2.9 um",
        ),
        SensorFormat(
            name="1/2.7",
            width_mm=5.76,
            height_mm=3.24,
            source="OmniVision OV2710, 1920x1080 x 3 um",
        ),
        SensorFormat(name="1/2.5", width_mm=5.76, height_mm=4.29, source="lens-maker table, 4:3"),
        SensorFormat(name="1/2", width_mm=6.4, height_mm=4.8, source="lens-maker table, 4:3"),
        SensorFormat(name="1/1.8", width_mm=7.18, height_mm=5.32, source="lens-maker table, 4:3"),
        SensorFormat(name="2/3", width_mm=8.8, height_mm=6.6, source="lens-maker table, 4:3"),
        SensorFormat(name="1", width_mm=12.8, height_mm=9.6, source="lens-maker table, 4:3"),
    )
}

RESOLUTION_PRESETS: dict[str, tuple[int, int]] = {
    "d1": (704, 576),
    "720p": (1280, 720),
    "960p": (1280, 960),
    "1080p": (1920, 1080),
    "2mp": (1920, 1080),
    "3mp": (2304, 1296),
    "4mp": (2560, 1440),
    "5mp": (2592, 1944),
    "6mp": (3072, 2048),
    "8mp": (3840, 2160),
    "4k": (3840, 2160),
}


def sensor_format(name: str) -> SensorFormat:
    """Look up a sensor format written as 1/2.8, 1/2.8", 1/2.8 inch or 1/2.8-inch."""
    text = str(name).strip().lower()
    text = re.sub(r'(["\u201d\u2033\u2019\']|-?\s*inch(es)?|-?\s*in\b|\s*type)$', "", text).strip()
    text = text.replace(" ", "")
    if text in SENSOR_FORMATS:
        return SENSOR_FORMATS[text]
    # accept numerically equal spellings such as "1/3.0" or "0.5" for 1/2
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
        for fmt in SENSOR_FORMATS.values():
            n, _, d = fmt.name.partition("/")
            if math.isclose(value, float(n) / float(d or 1), rel_tol=1e-9):
                return fmt
    except (ValueError, ZeroDivisionError):
        pass
    allowed = ", ".join(f'{k}"' for k in SENSOR_FORMATS)
    raise OpticsError("sensor", name, f"one of {allowed} (or give sensor_width_mm)")


def parse_resolution(text: str | tuple[int, int]) -> tuple[int, int]:
    """Parse "1920x1080" (also 1920*1080, 1920×1080) or a preset like 1080p, 4MP, 4K."""
    if isinstance(text, tuple):
        width, height = text
    else:
        raw = str(text).strip().lower()
        if raw in RESOLUTION_PRESETS:
            return RESOLUTION_PRESETS[raw]
        match = re.fullmatch(r"(\d{1,6})\s*[x*\u00d7]\s*(\d{1,6})", raw)
        if not match:
            presets = ", ".join(RESOLUTION_PRESETS)
            raise OpticsError(
                "resolution", text, f"WIDTHxHEIGHT in pixels such as 1920x1080, or {presets}"
            )
        width, height = int(match[1]), int(match[2])
    for field, value in (("resolution width", width), ("resolution height", height)):
        if not MIN_PIXELS <= value <= MAX_PIXELS:
            raise OpticsError(field, value, f"{MIN_PIXELS}-{MAX_PIXELS} pixels")
    return int(width), int(height)


def parse_focal(text: str | float) -> tuple[float, float]:
    """Parse a fixed ("4", "4mm") or varifocal ("2.8-12", "2.8~12 mm") lens into (min, max) mm."""
    if isinstance(text, int | float):
        low = high = float(text)
    else:
        raw = str(text).strip().lower().removesuffix("mm").strip()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:[-~\u2013\u2014]\s*(\d+(?:\.\d+)?))?", raw)
        if not match:
            raise OpticsError(
                "focal",
                text,
                f"a focal length in mm ({MIN_FOCAL_MM:g}-{MAX_FOCAL_MM:g}) or a "
                "varifocal range like 2.8-12",
            )
        low = float(match[1])
        high = float(match[2]) if match[2] else low
    for value in (low, high):
        if not (math.isfinite(value) and MIN_FOCAL_MM <= value <= MAX_FOCAL_MM):
            raise OpticsError("focal", text, f"{MIN_FOCAL_MM:g}-{MAX_FOCAL_MM:g} mm")
    if high < low:
        raise OpticsError("focal", text, "a varifocal range written wide-tele, e.g. 2.8-12")
    return low, high


def _check_positive(field: str, value: float, allowed: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise OpticsError(field, value, allowed)
    return float(value)


def hfov_deg(focal_mm: float, sensor_width_mm: float) -> float:
    """Horizontal field of view, degrees: 2·atan(w / 2f) (rectilinear lens, no distortion)."""
    f = _check_positive("focal", focal_mm, f"{MIN_FOCAL_MM:g}-{MAX_FOCAL_MM:g} mm")
    w = _check_positive("sensor width", sensor_width_mm, "a positive width in mm")
    return math.degrees(2.0 * math.atan(w / (2.0 * f)))


def ppm_at(distance_m: float, focal_mm: float, sensor_width_mm: float, width_px: int) -> float:
    """Pixel density at ground distance d, px/m: PPM(d) = R_h·f / (w·d)."""
    d = _check_positive("distance", distance_m, "a positive distance in metres")
    f = _check_positive("focal", focal_mm, f"{MIN_FOCAL_MM:g}-{MAX_FOCAL_MM:g} mm")
    w = _check_positive("sensor width", sensor_width_mm, "a positive width in mm")
    return width_px * f / (w * d)


def range_for_ppm(ppm: float, focal_mm: float, sensor_width_mm: float, width_px: int) -> float:
    """Distance at which the density falls to `ppm`, metres: d_max = R_h·f / (w·PPM)."""
    p = _check_positive("ppm", ppm, "a positive pixel density in px/m")
    f = _check_positive("focal", focal_mm, f"{MIN_FOCAL_MM:g}-{MAX_FOCAL_MM:g} mm")
    w = _check_positive("sensor width", sensor_width_mm, "a positive width in mm")
    return width_px * f / (w * p)


class LensReport(BaseModel):
    """What one focal length gives on one sensor and resolution."""

    focal_mm: float
    hfov_deg: float
    vfov_deg: float
    dori_m: dict[str, float]


class CameraOptics(BaseModel):
    """A camera's sensor, lens (fixed or varifocal) and resolution, validated; see `optics()`."""

    model_config = ConfigDict(frozen=True)

    sensor: str
    sensor_width_mm: float
    sensor_height_mm: float
    focal_min_mm: float
    focal_max_mm: float
    width_px: int
    height_px: int

    @property
    def varifocal(self) -> bool:
        return self.focal_max_mm > self.focal_min_mm

    def _focal(self, focal_mm: float | None) -> float:
        if focal_mm is None:
            return self.focal_min_mm
        if not self.focal_min_mm - 1e-9 <= focal_mm <= self.focal_max_mm + 1e-9:
            raise OpticsError(
                "focal", focal_mm, f"{self.focal_min_mm:g}-{self.focal_max_mm:g} mm for this lens"
            )
        return float(focal_mm)

    def hfov_deg(self, focal_mm: float | None = None) -> float:
        """Horizontal FOV at a focal length (default: the widest)."""
        return hfov_deg(self._focal(focal_mm), self.sensor_width_mm)

    def vfov_deg(self, focal_mm: float | None = None) -> float:
        """Vertical FOV of the recorded frame (sensor height scaled to the frame's aspect)."""
        height = min(self.sensor_height_mm, self.sensor_width_mm * self.height_px / self.width_px)
        return hfov_deg(self._focal(focal_mm), height)

    def ppm_at(self, distance_m: float, focal_mm: float | None = None) -> float:
        """Pixel density at a distance, px/m."""
        return ppm_at(distance_m, self._focal(focal_mm), self.sensor_width_mm, self.width_px)

    def dori_range_m(self, level: str = "observe", focal_mm: float | None = None) -> float:
        """Distance in metres out to which a DORI level is met."""
        if level not in DORI_PPM:
            raise OpticsError("dori level", level, ", ".join(DORI_PPM))
        return range_for_ppm(
            DORI_PPM[level], self._focal(focal_mm), self.sensor_width_mm, self.width_px
        )

    def report(self, focal_mm: float | None = None) -> LensReport:
        """FOV and all four DORI ranges at one focal length."""
        f = self._focal(focal_mm)
        return LensReport(
            focal_mm=f,
            hfov_deg=self.hfov_deg(f),
            vfov_deg=self.vfov_deg(f),
            dori_m={level: self.dori_range_m(level, f) for level in DORI_PPM},
        )

    def reports(self) -> list[LensReport]:
        """One report per end of the zoom range (one for a fixed lens)."""
        ends = [self.focal_min_mm] + ([self.focal_max_mm] if self.varifocal else [])
        return [self.report(f) for f in ends]


def optics(
    focal: str | float,
    sensor: str | None = "1/2.8",
    resolution: str | tuple[int, int] = "1920x1080",
    sensor_width_mm: float | None = None,
) -> CameraOptics:
    """Validate lens, sensor and resolution into a CameraOptics; OpticsError names a bad field."""
    low, high = parse_focal(focal)
    width_px, height_px = parse_resolution(resolution)
    if sensor_width_mm is not None:
        w = _check_positive("sensor_width_mm", sensor_width_mm, "0.5-50 mm")
        if not 0.5 <= w <= 50:
            raise OpticsError("sensor_width_mm", sensor_width_mm, "0.5-50 mm")
        name = sensor or f"{w:g} mm wide"
        return CameraOptics(
            sensor=name,
            sensor_width_mm=w,
            sensor_height_mm=w * height_px / width_px,
            focal_min_mm=low,
            focal_max_mm=high,
            width_px=width_px,
            height_px=height_px,
        )
    if sensor is None:
        raise OpticsError("sensor", sensor, "a sensor format such as 1/2.8 or a sensor_width_mm")
    fmt = sensor_format(sensor)
    return CameraOptics(
        sensor=fmt.name,
        sensor_width_mm=fmt.width_mm,
        sensor_height_mm=fmt.height_mm,
        focal_min_mm=low,
        focal_max_mm=high,
        width_px=width_px,
        height_px=height_px,
    )
