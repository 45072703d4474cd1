"""The video-quality fault codes of DESIGN §5.5 and their human-readable names."""

from __future__ import annotations

FAULT_NAMES: dict[str, str] = {
    "signal_loss": "signal loss (no picture, black or blue screen)",
    "frozen": "frozen picture",
    "occlusion": "occlusion or cover",
    "blur": "defocus or blur",
    "too_dark": "too dark",
    "too_bright": "too bright",
    "colour_cast": "colour cast",
    "snow_noise": "snow noise",
    "stripes": "stripe interference",
    "scene_change": "scene change (camera moved or turned)",
    "shake": "shake or jitter",
    "ptz_drift": "PTZ out of control (view keeps drifting)",
}

FAULT_CODES: tuple[str, ...] = tuple(FAULT_NAMES)
