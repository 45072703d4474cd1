"""Installation photos kept with a registered device (re-encoded JPEG, at most a few each)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select

from gridwatch import schema

_p = schema.device_photos
# what a listing shows of a photo: everything but its bytes
_LISTED = (
    _p.c.id,
    _p.c.device_id,
    _p.c.width,
    _p.c.height,
    _p.c.note,
    _p.c.taken_by,
    _p.c.taken_at,
)


def photo_count(conn: Connection, device_id: str) -> int:
    """How many photos the device has."""
    return int(conn.execute(select(func.count()).where(_p.c.device_id == device_id)).scalar_one())


def store_photo(
    conn: Connection,
    device_id: str,
    jpeg: bytes,
    width: int,
    height: int,
    note: str | None,
    by: str,
) -> RowMapping:
    """Store a JPEG photo of the device; its listed fields (id, taken_at, ...) come back."""
    stmt = (
        insert(_p)
        .values(
            device_id=device_id,
            content_type="image/jpeg",
            bytes=jpeg,
            width=width,
            height=height,
            note=note,
            taken_by=by,
        )
        .returning(*_LISTED)
    )
    return conn.execute(stmt).mappings().one()


def photos_of(conn: Connection, device_id: str) -> list[RowMapping]:
    """The device's photos without their bytes, newest first."""
    stmt = (
        select(*_LISTED)
        .where(_p.c.device_id == device_id)
        .order_by(_p.c.taken_at.desc(), _p.c.id.desc())
    )
    return list(conn.execute(stmt).mappings().all())


def photo_bytes(conn: Connection, device_id: str, photo_id: int) -> Any:
    """The stored bytes of one of the device's photos; None when it has no such photo."""
    return conn.execute(
        select(_p.c.bytes).where(_p.c.id == photo_id, _p.c.device_id == device_id)
    ).scalar()
