"""Typed SQLAlchemy 2.0 / GeoAlchemy2 mappings of the foundation tables (DDL lives in migrations)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base; the tables themselves are created by alembic migrations."""


class Region(Base):
    """An administrative division, province (1) down to administrative village (5)."""

    __tablename__ = "regions"
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger)
    name: Mapped[str] = mapped_column(Text)
    parent_code: Mapped[str | None] = mapped_column(String(12), ForeignKey("regions.code"))
    urban_rural_code: Mapped[int | None] = mapped_column(SmallInteger)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=4326), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Grid(Base):
    """A management grid: 1 street, 2 community, 3 base grid."""

    __tablename__ = "grids"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    level: Mapped[int] = mapped_column(SmallInteger)
    parent_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("grids.id"))
    region_code: Mapped[str | None] = mapped_column(String(12), ForeignKey("regions.code"))
    households: Mapped[int | None] = mapped_column(Integer)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=4326))


class GridWorker(Base):
    """A grid worker (网格员) assigned to one grid."""

    __tablename__ = "grid_workers"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    grid_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("grids.id"))
    name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)


class KeySite(Base):
    """A key site that must be under electronic watch (road, square, station, dock, exit...)."""

    __tablename__ = "key_sites"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    region_code: Mapped[str | None] = mapped_column(String(12), ForeignKey("regions.code"))
    geom: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=4326))


class Device(Base):
    """A registered device by its 20-digit GB/T 28181 id."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    gb_edition: Mapped[int] = mapped_column(SmallInteger, default=2016)
    type_code: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(Text)
    sub_kind: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    network_code: Mapped[int | None] = mapped_column(SmallInteger)
    industry_code: Mapped[str | None] = mapped_column(String(2))
    resource_class: Mapped[int | None] = mapped_column(SmallInteger)
    vendor: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    position: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326), nullable=True)
    mount_height_m: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    focal_mm: Mapped[float | None] = mapped_column(Float)
    focal_max_mm: Mapped[float | None] = mapped_column(Float)
    sensor_format: Mapped[str | None] = mapped_column(Text)
    resolution_w: Mapped[int | None] = mapped_column(Integer)
    resolution_h: Mapped[int | None] = mapped_column(Integer)
    hfov_deg: Mapped[float | None] = mapped_column(Float)
    range_m: Mapped[float | None] = mapped_column(Float)
    ptz: Mapped[bool] = mapped_column(Boolean, default=False)
    presets: Mapped[Any] = mapped_column(JSONB, nullable=True)
    fov: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=4326), nullable=True)
    region_code: Mapped[str | None] = mapped_column(String(12), ForeignKey("regions.code"))
    grid_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("grids.id"))
    networked: Mapped[bool] = mapped_column(Boolean, default=True)
    stream_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="unknown")
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_s: Mapped[int] = mapped_column(Integer, default=60)
    registered_by: Mapped[str | None] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Alarm(Base):
    """An alarm with its lifecycle state; unique per (device_id, msg_id)."""

    __tablename__ = "alarms"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(20), ForeignKey("devices.id"))
    msg_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    severity: Mapped[int] = mapped_column(SmallInteger)
    position: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326), nullable=True)
    region_code: Mapped[str | None] = mapped_column(String(12), ForeignKey("regions.code"))
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    repeat_count: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(Text, default="new")
    detail: Mapped[Any] = mapped_column(JSONB, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_by: Mapped[str | None] = mapped_column(Text)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AlarmEvent(Base):
    """One step in an alarm's lifecycle."""

    __tablename__ = "alarm_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("alarms.id"))
    state: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class DeadLetter(Base):
    """A message that could not be parsed or validated, kept with its raw bytes and reason."""

    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, default="mqtt")


class PendingDevice(Base):
    """A well-formed but unregistered device id heard on the broker."""

    __tablename__ = "pending_devices"
    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    message_count: Mapped[int] = mapped_column(BigInteger, default=1)
    last_topic: Mapped[str | None] = mapped_column(Text)
    last_payload: Mapped[bytes | None] = mapped_column(LargeBinary)


class User(Base):
    """A person who signs in: operator, installer, auditor or admin."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(Text, unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    full_name: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditLog(Base):
    """Who changed what, when."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    entity: Mapped[str] = mapped_column(Text)
    entity_id: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[Any] = mapped_column(JSONB, nullable=True)
