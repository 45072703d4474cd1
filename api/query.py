"""SQLAlchemy Core building blocks for user-filtered queries: region scope, map box, paging."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.responses import Response
from psycopg import AsyncRawCursor
from psycopg.rows import namedtuple_row
from pydantic import Field
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    DateTime,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.util import ClauseAdapter

from api.geojson import BBox, Page
from api.scope import region_range


def in_scope(column: ColumnElement[Any], scopes: list[str] | None) -> ColumnElement[bool]:
    """Rows whose region `column` lies in any scope: TRUE for None (everywhere), FALSE for []."""
    if scopes is None:
        return true()
    if not scopes:
        return false()
    return or_(*(column.between(*region_range(code)) for code in scopes))


def in_scope_bound(column: ColumnElement[Any], count: int | None) -> ColumnElement[bool]:
    """in_scope with the ranges as named parameters (scope_values): one statement for any scopes
    of this count (None: everywhere, 0: nowhere)."""
    if count is None:
        return true()
    if not count:
        return false()
    return or_(
        *(
            column.between(bindparam(f"scope_lo{i}"), bindparam(f"scope_hi{i}"))
            for i in range(count)
        )
    )


def scope_values(scopes: list[str] | None) -> dict[str, str]:
    """The parameters of in_scope_bound for these scopes."""
    values = {}
    for i, code in enumerate(scopes or ()):
        values[f"scope_lo{i}"], values[f"scope_hi{i}"] = region_range(code)
    return values


def in_box(geom: ColumnElement[Any], box: BBox | None) -> ColumnElement[bool]:
    """Rows whose geometry's bounding box meets the WGS 84 box (index-friendly &&); TRUE if none."""
    if box is None:
        return true()
    envelope = func.ST_MakeEnvelope(box.west, box.south, box.east, box.north, 4326)
    return geom.op("&&")(envelope)


def in_box_bound(geom: ColumnElement[Any]) -> ColumnElement[bool]:
    """in_box with the box as named parameters (box_values)."""
    edges: Iterable[Any] = (bindparam(f"box_{edge}") for edge in ("west", "south", "east", "north"))
    return geom.op("&&")(func.ST_MakeEnvelope(*edges, 4326))


def box_values(box: BBox | None) -> dict[str, float]:
    """The parameters of in_box_bound for this box (none without one)."""
    if box is None:
        return {}
    return {
        "box_west": box.west,
        "box_south": box.south,
        "box_east": box.east,
        "box_north": box.north,
    }


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


# ---------------------------------------------------------------------------- answers built in SQL
# Hot list routes let PostgreSQL write their rows as JSON (json_agg) and send the text on as it is:
# no row objects, no model validation, no serialisation in Python. Their OpenAPI models stay the
# contract; tests/api compare these answers with the models.


def json_time(column: ColumnElement[Any]) -> ColumnElement[str]:
    """A timestamp written as every other answer writes it (pydantic): UTC, 'Z', microseconds
    unless they are zero (2026-12-02T16:07:03.280000Z, 2026-12-02T16:07:03Z)."""
    written = func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    return func.replace(written, ".000000Z", "Z")


def json_columns(columns: Iterable[Any]) -> list[Any]:
    """The columns of a select as its JSON answer names and writes them (timestamps by json_time)."""
    return [json_time(c).label(c.name) if isinstance(c.type, DateTime) else c for c in columns]


def json_page(stmt: Select[Any], cursor: str | None = None, paged: bool = False) -> Select[Any]:
    """One statement for one page of `stmt` (parameters: page_values): `items`, the JSON text of
    its rows on the page in order (an object per row, keys = column names), `more` (another page
    follows) and, with `cursor`, that column of the page's last row when more follow. paged:
    `stmt` is limited to the page already (page_fetch rows from page_offset, cast_from)."""
    limit: Any = bindparam("page_limit")
    if not paged:
        stmt = stmt.limit(bindparam("page_fetch")).offset(bindparam("page_offset"))
    rows = stmt.cte("page_rows")
    item = select(rows).limit(limit).subquery("item")
    as_json = func.coalesce(func.json_agg(item.table_valued()), literal_column("'[]'::json"))
    columns = [
        cast(select(as_json).scalar_subquery(), Text).label("items"),
        select(func.count() > limit).select_from(rows).scalar_subquery().label("more"),
    ]
    if cursor:
        last = select(rows.c[cursor]).offset(bindparam("page_last")).limit(1).scalar_subquery()
        columns.append(last.label("cursor"))
    return select(*columns)


def cast_from(stmt: Select[Any], table: Any, rows: Any) -> Select[Any]:
    """`stmt` reading `rows` (a subquery of `table`'s columns, e.g. one page of it) in place of
    `table`: its columns, joins, conditions and order."""
    return ClauseAdapter(rows).traverse(stmt)


def page_values(page: Page) -> dict[str, int]:
    """The parameters of json_page for this page."""
    return {
        "page_limit": page.limit,
        "page_fetch": page.limit + 1,
        "page_offset": page.offset,
        "page_last": page.limit - 1,
    }


@dataclass(frozen=True)
class Template:
    """A statement compiled once for the driver: SQL text with PostgreSQL's own placeholders
    ($1, $2, ...), the parameter names in that order and their defaults (the constants)."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional parameters for these named values (constants where not given)."""
        defaults = self.defaults
        return [values[n] if n in values else defaults.get(n) for n in self.names]


_TEMPLATES: dict[Hashable, Template] = {}
# $n placeholders, run by psycopg's raw cursor: psycopg parses %(name)s placeholders on every
# execute of a statement longer than 4 kB or with over 50 parameters (its cache skips those),
# which the page statements are (~15% of the API's CPU per read, bench/RESULTS.md)
_DIALECT = PGDialect_psycopg(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]


def template(key: Hashable, build: Callable[[], ClauseElement]) -> Template:
    """The statement `build()` makes for `key` (its shape: which filters, how many scopes),
    compiled the first time only: a hot route then binds values instead of building, hashing and
    looking up a statement per request. Every value must be a named parameter (bindparam)."""
    found = _TEMPLATES.get(key)
    if found is None:
        if len(_TEMPLATES) > 1000:  # shapes are few; never grow without bound
            _TEMPLATES.clear()
        compiled = build().compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)  # a statement, not DDL
        # the constants' values; the named parameters (values of a request) are left None here
        defaults = compiled.construct_params(_check=False)
        names = tuple(compiled.positiontup or ())
        found = _TEMPLATES[key] = Template(compiled.string, names, dict(defaults or {}))
    return found


async def fetch_one(conn: AsyncConnection, tpl: Template, values: Mapping[str, Any]) -> Any:
    """The first row of a template run with these values on the connection's driver (psycopg)."""
    raw: Any = (await conn.get_raw_connection()).driver_connection
    async with AsyncRawCursor(raw, row_factory=namedtuple_row) as cur:
        await cur.execute(tpl.sql, tpl.args(values))
        return await cur.fetchone()


def page_answer(found: Any, page: Page, **more: Any) -> Response:
    """The answer of a page (json_page's row `found`): items as PostgreSQL wrote them, paging,
    and any other fields."""
    return json_answer(
        items=orjson.Fragment(found.items),
        limit=page.limit,
        offset=page.offset,
        next_offset=page.offset + page.limit if found.more else None,
        **more,
    )


def json_answer(**fields: Any) -> Response:
    """An application/json answer; orjson.Fragment values (JSON text from SQL) go in as they are."""
    return Response(orjson.dumps(fields), media_type="application/json")
