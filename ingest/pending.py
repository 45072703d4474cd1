"""Pending devices: unknown ids heard on the broker (ingest records them) until an installer adopts them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, func, select

from gridwatch import schema

_p = schema.pending_devices


def lock_pending(conn: Connection, device_id: str) -> Row[Any] | None:
    """The pending device's last reported position (lon, lat; NULL if none), row locked for
    adoption; None when the id is not pending."""
    stmt = (
        select(func.ST_X(_p.c.position).label("lon"), func.ST_Y(_p.c.position).label("lat"))
        .where(_p.c.id == device_id)
        .with_for_update()
    )
    return conn.execute(stmt).first()


def forget_pending(conn: Connection, device_id: str) -> None:
    """Drop the id from the pending list (it was adopted)."""
    conn.execute(delete(_p).where(_p.c.id == device_id))
