"""GeoJSON answers: bbox and paging parameters, and FeatureCollection models built from SQL rows."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field

from api.errors import unprocessable

MAX_BBOX_SQ_DEG = 4.0  # about 200 km x 200 km at Jiangxi's latitude; wider views use /tiles
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000


class Feature(BaseModel):
    """A GeoJSON Feature (RFC 7946), geometry in WGS 84."""

    type: Literal["Feature"] = "Feature"
    id: str | int | None = None
    geometry: dict[str, Any] | None
    properties: dict[str, Any]


class FeatureCollection(BaseModel):
    """A page of GeoJSON features with paging information."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Feature]
    number_returned: int = Field(description="Features on this page.")
    limit: int
    offset: int
    next_offset: int | None = Field(None, description="Offset of the next page; null at the end.")
    next_cursor: str | None = Field(
        None, description="Pass as `after` for the next page (keyset paging)."
    )


@dataclass(frozen=True)
class BBox:
    """A lon/lat box in WGS 84."""

    west: float
    south: float
    east: float
    north: float

    def params(self) -> dict[str, float]:
        return {"w": self.west, "s": self.south, "e": self.east, "n": self.north}

    SQL = "ST_MakeEnvelope(:w, :s, :e, :n, 4326)"


def parse_bbox(text: str | None, max_sq_deg: float = MAX_BBOX_SQ_DEG) -> BBox | None:
    """Parse 'west,south,east,north' (WGS 84 degrees); 422 with the reason when it is wrong or huge."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise unprocessable("bbox", "must be four numbers: west,south,east,north (WGS 84 degrees)")
    try:
        w, s, e, n = (float(p) for p in parts)
    except ValueError:
        raise unprocessable("bbox", f"{text!r}: every part must be a number") from None
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise unprocessable("bbox", "numbers must be finite")
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise unprocessable("bbox", "longitudes must lie in -180..180 and latitudes in -90..90")
    if w >= e or s >= n:
        raise unprocessable("bbox", "west must be less than east and south less than north")
    area = (e - w) * (n - s)
    if area > max_sq_deg:
        raise unprocessable(
            "bbox",
            f"covers {area:.1f} square degrees; at most {max_sq_deg:g} per request "
            "(zoom in, or use /tiles/{layer}/{z}/{x}/{y}.pbf for wide views)",
        )
    return BBox(w, s, e, n)


@dataclass(frozen=True)
class Page:
    """limit/offset paging, validated."""

    limit: int
    offset: int


async def paging(
    limit: int = Query(100, ge=1, le=MAX_LIMIT, description=f"Items per page (1-{MAX_LIMIT})."),
    offset: int = Query(0, ge=0, le=MAX_OFFSET, description="Items to skip (0 or more)."),
) -> Page:
    """The paging query parameters; negative or huge values are a 422."""
    return Page(limit, offset)


BBOX_PATTERN = r"^\s*-?\d{1,3}(\.\d+)?\s*(,\s*-?\d{1,3}(\.\d+)?\s*){3}$"
BBOX_QUERY = Query(
    None,
    max_length=200,
    pattern=BBOX_PATTERN,
    description="west,south,east,north in WGS 84 degrees; at most 4 square degrees.",
    examples=["115.8,28.4,116.1,28.7"],
)


def collection(
    rows: Sequence[Mapping[Any, Any]],  # RowMappings or dicts
    page: Page,
    id_key: str = "id",
    cursor_key: str | None = None,
) -> FeatureCollection:
    """A FeatureCollection from rows that carry 'geojson' (text) and properties; rows = limit+1 max."""
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    features = []
    for row in rows:
        row = dict(row)
        geometry = row.pop("geojson", None)
        fid = row.get(id_key)
        features.append(
            Feature(
                id=fid.strip() if isinstance(fid, str) else fid,
                geometry=json.loads(geometry) if geometry else None,
                properties={k: _plain(v) for k, v in row.items()},
            )
        )
    next_cursor = None
    if more and cursor_key and rows:
        value = rows[-1][cursor_key]
        next_cursor = str(value).strip()
    return FeatureCollection(
        features=features,
        number_returned=len(features),
        limit=page.limit,
        offset=page.offset,
        next_offset=page.offset + page.limit if more else None,
        next_cursor=next_cursor,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
