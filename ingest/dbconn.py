"""Run raw SQL on whatever connection a caller holds: psycopg 3 connection/cursor or SQLAlchemy."""

from __future__ import annotations

from typing import Any

import psycopg

Conn = Any  # psycopg.Connection | psycopg.Cursor | sqlalchemy Connection | sqlalchemy Session


def execute(conn: Conn, sql: str, params: Any = None) -> Any:
    """Execute `sql` (psycopg %s / %(name)s placeholders) and return a cursor-like result.

    The caller owns the transaction: nothing here commits.
    """
    if isinstance(conn, psycopg.Connection | psycopg.Cursor):
        return conn.execute(sql, params)
    if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy Connection
        return (
            conn.exec_driver_sql(sql, params) if params is not None else conn.exec_driver_sql(sql)
        )
    if hasattr(conn, "connection") and hasattr(conn, "commit"):  # SQLAlchemy Session
        return execute(conn.connection(), sql, params)
    raise TypeError(f"not a database connection: {type(conn).__name__}")


def connect(url: str | None = None, **kwargs: Any) -> psycopg.Connection:
    """A psycopg 3 connection to the configured database as the ingest role (least privilege:
    gridwatch/dbroles.py), or to `url` (SQLAlchemy URL accepted)."""
    from gridwatch.settings import get_settings

    url = url or get_settings().db_url(role="ingest")
    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    return psycopg.connect(url, **kwargs)
