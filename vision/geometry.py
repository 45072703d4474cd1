"""Image-plane geometry: normalised polygons and lines, rasterising, point tests, crossings.

All camera geometry (privacy masks, motion masks, zones, tripwires) is given in normalised image
coordinates: x in [0, 1] left to right, y in [0, 1] top to bottom. That keeps it valid when a
camera is analysed on its sub-stream (e.g. 704x576) but drawn on its main stream (1920x1080).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pydantic import BaseModel, Field, field_validator

Point = tuple[float, float]


class Polygon(BaseModel):
    """A closed polygon in normalised image coordinates (at least three points)."""

    points: list[Point] = Field(min_length=3)

    @field_validator("points")
    @classmethod
    def _in_unit_square(cls, pts: list[Point]) -> list[Point]:
        for x, y in pts:
            if not (-0.001 <= x <= 1.001 and -0.001 <= y <= 1.001):
                raise ValueError(f"point ({x}, {y}) is outside the normalised frame [0,1]x[0,1]")
        return pts

    def contains(self, x: float, y: float) -> bool:
        """Even-odd test of a normalised point."""
        return point_in_polygon(self.points, x, y)


def rasterise(polys: Sequence[Polygon], width: int, height: int) -> np.ndarray:
    """A uint8 mask (1 inside any polygon) of the given pixel size."""
    mask = np.zeros((height, width), np.uint8)
    if polys:
        cv2.fillPoly(mask, to_pixels(polys, width, height), 1)
    return mask


def to_pixels(polys: Sequence[Polygon], width: int, height: int) -> list[np.ndarray]:
    """Polygons as int32 pixel arrays for cv2.fillPoly."""
    return [
        np.array([[round(x * (width - 1)), round(y * (height - 1))] for x, y in p.points], np.int32)
        for p in polys
    ]


def point_in_polygon(points: Sequence[Point], x: float, y: float) -> bool:
    """Even-odd ray casting."""
    inside = False
    n = len(points)
    j = n - 1
    for i in range(n):
        xi, yi = points[i]
        xj, yj = points[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def side_of(a: Point, b: Point, p: Point) -> float:
    """Cross product: > 0 when p is on the right of a->b as seen on screen (image y points
    down), < 0 on the left, 0 on the line."""
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def segments_cross(a: Point, b: Point, p: Point, q: Point) -> bool:
    """True when segment p->q properly crosses segment a-b (touching an end counts once)."""
    d1, d2 = side_of(a, b, p), side_of(a, b, q)
    d3, d4 = side_of(p, q, a), side_of(p, q, b)
    return (d1 * d2 < 0 or (d2 == 0 and d1 != 0)) and d3 * d4 <= 0
