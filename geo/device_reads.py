"""Reads of one registered device that the API's routes need: its standing, its camera settings,
its live source."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, exists, select

from gridwatch import schema

_d = schema.devices


def device_standing(conn: Connection, device_id: str) -> Row[Any] | None:
    """The device's region_code and retired_at; None when the id was never registered."""
    return conn.execute(
        select(_d.c.region_code, _d.c.retired_at).where(_d.c.id == device_id)
    ).first()


def device_with_camera_config(conn: Connection, device_id: str) -> Row[Any] | None:
    """The device's id, region_code, registered_at, kind and vision `config` (None: unknown id)."""
    v = schema.vision_cameras
    stmt = (
        select(_d.c.id, _d.c.region_code, _d.c.registered_at, _d.c.kind, v.c.config)
        .select_from(_d.outerjoin(v, v.c.device_id == _d.c.id))
        .where(_d.c.id == device_id)
    )
    return conn.execute(stmt).first()


def live_source(conn: Connection, device_id: str) -> tuple[str | None, bool]:
    """The camera's stream URL, and whether a GB/T 28181 gateway fronts it (a registered id)."""
    g = schema.gb_devices
    fronted = exists().where(g.c.device_id == _d.c.id)
    url, gb28181 = conn.execute(select(_d.c.stream_url, fronted).where(_d.c.id == device_id)).one()
    return url, bool(gb28181)


def require_active_device(conn: Connection, device_id: str) -> None:
    """LookupError unless `device_id` is a registered device that is not retired (what a
    gateway's per-device settings may be attached to)."""
    found = conn.execute(
        select(_d.c.id).where(_d.c.id == device_id, _d.c.retired_at.is_(None))
    ).first()
    if found is None:
        raise LookupError(f"{device_id} is not a registered device; register it first")
