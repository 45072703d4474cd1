"""Pydantic response models derived from gridwatch.schema's Core tables (no hand-kept field lists)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, create_model
from sqlalchemy import Column, Table


def python_type(column: Column[Any]) -> Any:
    """The Python type a column's values arrive as (str for CHAR/TEXT, int, float, bool, datetime...)."""
    return column.type.python_type


def table_model(
    name: str,
    table: Table,
    columns: Iterable[str],
    *,
    doc: str,
    extra: dict[str, Any] | None = None,
) -> type[BaseModel]:
    """A model with one field per named column, typed from the column: NOT NULL columns are
    required, nullable ones default to None. `extra` adds fields that are not plain columns
    (computed ones such as lon/lat of a point), as create_model field definitions."""
    fields: dict[str, Any] = {}
    for col_name in columns:
        column = table.c[col_name]
        kind = python_type(column)
        fields[col_name] = (kind, ...) if not column.nullable else (kind | None, None)
    fields.update(extra or {})
    return create_model(name, __doc__=doc, __base__=BaseModel, **fields)
