"""SQLAlchemy Core building blocks for user-filtered queries: region scope, map box, paging."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, true

from api.geojson import BBox, Page
from api.scope import region_range


def in_scope(column: ColumnElement[Any], scopes: list[str] | None) -> ColumnElement[bool]:
    """Rows whose region `column` lies in any scope: TRUE for None (everywhere), FALSE for []."""
    if scopes is None:
        return true()
    if not scopes:
        return false()
    return or_(*(column.between(*region_range(code)) for code in scopes))


def in_box(geom: ColumnElement[Any], box: BBox | None) -> ColumnElement[bool]:
    """Rows whose geometry's bounding box meets the WGS 84 box (index-friendly &&); TRUE if none."""
    if box is None:
        return true()
    envelope = func.ST_MakeEnvelope(box.west, box.south, box.east, box.north, 4326)
    return geom.op("&&")(envelope)


def all_of(*conditions: ColumnElement[bool] | None) -> ColumnElement[bool]:
    """AND of the conditions given (None ones skipped)."""
    return and_(true(), *(c for c in conditions if c is not None))


def one_page(stmt: Select[Any], page: Page) -> Select[Any]:
    """The statement limited to one page plus one row (so the caller knows if more follow)."""
    return stmt.limit(page.limit + 1).offset(page.offset)


FROM_HUB: Any = Field(
    None,
    description="The hub it comes from when it was made at another one: at a city hub, the "
    "county's id (federation); null for this hub's own",
    examples=["nanchang_xian"],
)


def from_hub(origin: ColumnElement[Any]) -> ColumnElement[Any]:
    """`from_hub`: a row's origin when that is another hub than this one, else NULL."""
    return case((origin != func.federation_origin(), origin)).label("from_hub")
