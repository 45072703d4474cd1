"""Privacy masks: per-camera polygons blacked out at the source, before anything else sees a frame.

The source wrappers in vision.sources call `apply` on every decoded frame, so analysis,
thumbnails, stored evidence and anything forwarded only ever hold masked pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, Field

from vision.geometry import Polygon, to_pixels


class PrivacyMask(BaseModel):
    """Polygons (normalised image coordinates) to black out, e.g. windows of homes."""

    polygons: list[Polygon] = Field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.polygons)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Black out the polygons in place (any size, BGR or luma) and return the image."""
        if self.polygons:
            h, w = image.shape[:2]
            colour = 0 if image.ndim == 2 else (0,) * image.shape[2]
            cv2.fillPoly(image, to_pixels(self.polygons, w, h), colour)
        return image
