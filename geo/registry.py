"""The device registry: validate, locate and store devices (single and bulk), with audit trail and broker notifications."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import Connection, func, select, text

from geo.coverage import DEFAULT_DORI, Coverage, LensInput, coverage
from geo.device_rows import given_values, upsert_one
from geo.views import relink_devices
from geo.village_areas import area_village_of
from gridwatch import schema
from gridwatch.errors import DomainError
from hardware.gbid import DEFAULT_EDITION, GbIdError, parse_device_id, type_meaning
from hardware.kinds import KindSpec, kind_for_type, sub_kinds
from hardware.optics import OpticsError, sensor_format
from hardware.region_code import RegionCode
from hardware.sector import SectorError

Crs = Literal["wgs84", "gcj02", "bd09"]

# The allowed range of every bounded field, as a person reads it; used in error messages.
ALLOWED: dict[str, str] = {
    "id": "20 ASCII digits (GB/T 28181 code)",
    "name": "1-200 characters",
    "lon": "-180 to 180 degrees",
    "lat": "-89 to 89 degrees",
    "crs": "wgs84, gcj02 or bd09",
    "gb_edition": "2016 or 2022",
    "mount_height_m": "0-500 m",
    "heading_deg": "0-360 degrees clockwise from north",
    "focal_mm": "0.5-2000 mm",
    "focal_max_mm": "0.5-2000 mm, at least focal_mm",
    "sensor_format": 'an optical format such as 1/2.8" or 1/3',
    "resolution_w": "16-16384 px",
    "resolution_h": "16-16384 px",
    "hfov_deg": "0-360 degrees (exclusive of 0)",
    "presets": "up to 256 presets {heading_deg 0-360, focal_mm within the lens}",
    "resource_class": "1, 2 or 3",
    "network_code": "0-9, equal to digit 14 of the id",
    "heartbeat_s": "1-86400 s",
    "stream_url": "rtsp://, rtsps://, http://, https:// or file:// URL up to 2048 characters",
    "sub_kind": "a gridwatch sub-kind of the id's type code",
    "village_code": "the 12-digit code of an imported, not retired administrative village or community",
}


class RegistryError(DomainError):
    """A registration that cannot be accepted: the field, and why (with the allowed range);
    status 404 for an unknown id, 409 for a duplicate or a second retirement."""

    field: str

    def __init__(self, field: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(field, reason, status=status)


class PresetIn(BaseModel):
    """One PTZ preset as an installer gives it: where it looks and the zoom."""

    model_config = ConfigDict(extra="forbid")

    heading_deg: float = Field(ge=0, le=360)
    focal_mm: float | None = Field(default=None, ge=0.5, le=2000)


class DeviceRegistration(BaseModel):
    """What an installer gives to register a device; positions in `crs` (converted to WGS 84)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=r"^[0-9]{20}$")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-89, le=89)
    crs: Crs = "wgs84"
    gb_edition: Literal[2016, 2022] = DEFAULT_EDITION
    sub_kind: str | None = None
    mount_height_m: float | None = Field(default=None, ge=0, le=500)
    heading_deg: float | None = Field(default=None, ge=0, le=360)
    focal_mm: float | None = Field(default=None, ge=0.5, le=2000)
    focal_max_mm: float | None = Field(default=None, ge=0.5, le=2000)
    sensor_format: str | None = None
    resolution_w: int | None = Field(default=None, ge=16, le=16384)
    resolution_h: int | None = Field(default=None, ge=16, le=16384)
    hfov_deg: float | None = Field(default=None, gt=0, le=360)
    ptz: bool = False
    presets: list[PresetIn] = Field(default_factory=list, max_length=256)
    fisheye: bool = False
    resource_class: Literal[1, 2, 3] | None = None
    network_code: int | None = Field(default=None, ge=0, le=9)
    vendor: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    networked: bool = True
    stream_url: str | None = Field(default=None, max_length=2048)
    heartbeat_s: int | None = Field(default=None, ge=1, le=86400)
    village_code: str | None = Field(default=None, pattern=r"^[0-9]{12}$")
    accept_unassigned_type: bool = Field(
        default=False,
        description="Register a code whose type (digits 11-13) the standard does not assign, as 'other'.",
    )

    @model_validator(mode="before")
    @classmethod
    def _swapped(cls, data: Any) -> Any:
        """A latitude beyond ±89° beside a longitude that would be a latitude: said so."""
        if isinstance(data, Mapping):
            lon, lat = data.get("lon"), data.get("lat")
            if (
                isinstance(lon, int | float)
                and isinstance(lat, int | float)
                and abs(lat) > 89
                and abs(lat) <= 180
                and abs(lon) <= 89
            ):
                raise ValueError(
                    f"lat: {lat:g} is not a latitude but {lon:g} could be one: longitude and "
                    f"latitude look swapped (give lon={lat:g}, lat={lon:g})"
                )
        return data

    @field_validator("id", mode="before")
    @classmethod
    def _id_digits(cls, v: Any) -> Any:
        if isinstance(v, str):
            code = v.strip()
            if not code.isdigit() or not code.isascii():
                raise ValueError(
                    "holds characters other than the digits 0-9; a GB/T 28181 code is 20 digits"
                )
            if len(code) != 20:
                raise ValueError(
                    f"has {len(code)} digits; a GB/T 28181 code has 20 "
                    f"({'some are missing' if len(code) < 20 else 'too many'})"
                )
        return v

    @field_validator("heading_deg")
    @classmethod
    def _heading(cls, v: float | None) -> float | None:
        return None if v is None else v % 360.0

    @field_validator("sensor_format")
    @classmethod
    def _sensor(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return sensor_format(v).name
        except OpticsError as exc:
            raise ValueError(exc.allowed) from None

    @field_validator("stream_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v and not v.lower().startswith(
            ("rtsp://", "rtsps://", "http://", "https://", "file://")
        ):
            raise ValueError("the URL scheme must be rtsp, rtsps, http, https or file")
        return v or None

    @model_validator(mode="after")
    def _consistent(self) -> DeviceRegistration:
        if self.focal_max_mm is not None:
            if self.focal_mm is None:
                raise ValueError("focal_max_mm: give focal_mm (the wide end) too")
            if self.focal_max_mm < self.focal_mm:
                raise ValueError(
                    f"focal_max_mm: {self.focal_max_mm:g} is below focal_mm {self.focal_mm:g}"
                )
        if (self.resolution_w is None) != (self.resolution_h is None):
            raise ValueError("resolution_w: give resolution_w and resolution_h together")
        if self.presets and not self.ptz:
            raise ValueError("presets: only a PTZ camera (ptz=true) has presets")
        return self


@dataclass(slots=True)
class Decoded:
    """What the registry reads from a registration: the decoded id, its kind, WGS 84 position.

    A plain dataclass, not a pydantic model: every field is computed by `decode` from checked
    values, and an import builds one per row (model_construct cost 2/3 of decode's time)."""

    reg: DeviceRegistration
    lon: float
    lat: float
    type_code: str
    industry_code: str
    network_code: int
    kind: KindSpec
    findings: list[str]


# --- validation --------------------------------------------------------------------------------


def _field_of(loc: tuple[Any, ...], msg: str) -> str:
    if loc:
        return str(loc[0])
    head = msg.removeprefix("Value error, ").split(":", 1)[0].strip()
    return head if head in ALLOWED else "registration"


def validate_registration(data: DeviceRegistration | Mapping[str, Any]) -> DeviceRegistration:
    """Validate raw input into a DeviceRegistration, or RegistryError naming the first bad field."""
    if isinstance(data, DeviceRegistration):
        return data
    try:
        return DeviceRegistration.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        field = _field_of(tuple(first["loc"]), first["msg"])
        if msg.startswith(f"{field}:"):
            msg = msg.split(":", 1)[1].strip()
        value = first.get("input")
        shown = "" if isinstance(value, dict) else f"{value!r}: "
        allowed = ALLOWED.get(field)
        reason = f"{shown}{msg}" + (f"; allowed: {allowed}" if allowed else "")
        raise RegistryError(field, reason) from None


def to_wgs84_point(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """Convert a position given in wgs84/gcj02/bd09 to WGS 84 with hardware.crs."""
    if crs == "wgs84":
        return lon, lat
    try:
        from hardware.crs import to_wgs84
    except ImportError:  # pragma: no cover - geo/crs.py is written by the hardware helper
        raise RegistryError(
            "crs", f"{crs} conversion is not available (hardware.crs missing)"
        ) from None
    out = to_wgs84(lon, lat, crs)
    return float(out[0]), float(out[1])


@lru_cache(maxsize=4096)
def _id_fields(head: str, edition: int) -> tuple[int, str, int, KindSpec, bool]:
    """(type code, industry, network, kind, type assigned) of the ids beginning with `head`
    (digits 1-14: what decode reads; the serial changes none of it), cached: an inventory's
    thousands of ids share a few heads. Raises as parse_device_id does."""
    gid = parse_device_id(head + "000000", edition)
    spec = kind_for_type(gid.type_code, edition)
    return gid.type_code, gid.industry, gid.network, spec, type_meaning(gid.type_code, edition)[2]


def decode(reg: DeviceRegistration) -> Decoded:
    """Decode the id (type, kind, network), convert the position, check id-derived consistency."""
    try:
        try:
            type_code, industry, network, spec, assigned = _id_fields(reg.id[:14], reg.gb_edition)
        except ValueError:  # the same error again, naming the whole id
            parse_device_id(reg.id, reg.gb_edition)
            raise
    except GbIdError as exc:
        raise RegistryError("id", f"{exc}; allowed: {ALLOWED['id']}") from None
    except ValueError as exc:
        raise RegistryError("id", str(exc)) from None
    if not assigned and not reg.accept_unassigned_type:
        raise RegistryError(
            "id",
            f"type code {type_code:03d} (digits 11-13) is not assigned in the "
            f"{reg.gb_edition} edition of GB/T 28181: check the label; to register it anyway "
            "as 'other', confirm it (accept_unassigned_type)",
        )
    findings: list[str] = []
    if spec.flagged:
        findings.append(spec.note)
    if reg.network_code is not None and reg.network_code != network:
        raise RegistryError(
            "network_code",
            f"{reg.network_code} differs from digit 14 of the id ({network}); "
            f"allowed: {ALLOWED['network_code']}",
        )
    if reg.sub_kind is not None:
        names = [k.name for k in sub_kinds(spec.name)] if not spec.flagged else []
        if reg.sub_kind not in names:
            allowed = ", ".join(names) or f"none for kind {spec.name}"
            raise RegistryError(
                "sub_kind", f"{reg.sub_kind!r} is not a sub-kind of {spec.name}; allowed: {allowed}"
            )
    lon, lat = to_wgs84_point(reg.lon, reg.lat, reg.crs)
    return Decoded(
        reg=reg,
        lon=lon,
        lat=lat,
        type_code=f"{type_code:03d}",
        industry_code=industry,
        network_code=network,
        kind=spec,
        findings=findings,
    )


def lens_of(reg: DeviceRegistration) -> LensInput:
    """The lens fields of a registration for geo.coverage."""
    return _lens(
        reg.heading_deg,
        reg.focal_mm,
        reg.focal_max_mm,
        reg.sensor_format,
        reg.resolution_w,
        reg.resolution_h,
        reg.hfov_deg,
        reg.ptz,
        tuple((p.heading_deg, p.focal_mm) for p in reg.presets),
        reg.fisheye,
    )


@lru_cache(maxsize=4096, typed=True)
def _lens(*fields: Any) -> LensInput:
    """LensInput(*fields) (in its field order), shared since it is frozen: an inventory's
    thousands of cameras have a few lenses and 360 headings, and building the frozen dataclass
    cost more than the rest of coverage_of. Typed: 1, 1.0 and True are different keys."""
    return LensInput(*fields)


def coverage_of(d: Decoded, level: str = DEFAULT_DORI, *, draw: bool = True) -> Coverage:
    """Coverage of a decoded registration (empty for kinds without a field of view).

    draw=False checks everything and leaves the shape pending for geo.device_rows.fov_ewkb_many.
    """
    if not d.kind.has_fov:
        return Coverage(None, None, None, [])
    try:
        return coverage(d.lon, d.lat, lens_of(d.reg), level, draw=draw)
    except (OpticsError, SectorError) as exc:
        field = {"focal": "focal_mm", "sensor": "sensor_format", "heading": "heading_deg"}.get(
            exc.field, exc.field
        )
        raise RegistryError(field, str(exc)) from None


# --- database ----------------------------------------------------------------------------------

_LOCATE_SQL = """
SELECT
  (SELECT r.code FROM region_parts r WHERE r.geom && p.g AND ST_Covers(r.geom, p.g)
    ORDER BY r.level DESC, r.code LIMIT 1) AS region_code,
  (SELECT gr.id FROM grids gr
    WHERE gr.level = 3 AND gr.geom && p.g AND ST_Covers(gr.geom, p.g) ORDER BY gr.id LIMIT 1) AS grid_id
FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) p
"""


_VILLAGE_SQL = """
SELECT r.code, r.name, 'polygon' AS basis FROM regions r
 WHERE r.level = 5 AND r.retired_at IS NULL AND r.geom && p.g AND ST_Covers(r.geom, p.g)
UNION ALL
SELECT r.code, r.name, 'approximate' FROM village_areas a JOIN regions r ON r.code = a.village_code
 WHERE r.retired_at IS NULL AND a.geom && p.g AND ST_Covers(a.geom, p.g)
ORDER BY 3 DESC, 1 LIMIT 1
"""


class VillageBasis(BaseModel):
    """The village a device counts toward and on what basis (code, polygon, approximate, none)."""

    code: str | None
    name: str | None = None
    basis: Literal["code", "polygon", "approximate", "none"]
    note: str


def village_of(
    conn: Connection, lon: float, lat: float, village_code: str | None = None
) -> VillageBasis:
    """Where a device counts: the village code it is registered with, else the village polygon
    containing it, else the approximate village area (Voronoi of village points), else none."""
    if village_code:
        row = conn.execute(
            text("SELECT code, name, level, retired_at FROM regions WHERE code = :c"),
            {"c": village_code},
        ).first()
        if row is None or row.level != 5:
            raise RegistryError(
                "village_code",
                f"{village_code} is not an imported village-level unit; allowed: {ALLOWED['village_code']}",
            )
        if row.retired_at is not None:
            raise RegistryError(
                "village_code",
                f"{village_code} {row.name} was retired on {row.retired_at:%Y-%m-%d}",
            )
        return VillageBasis(code=row.code, name=row.name, basis="code", note="by its village code")
    sql = f"SELECT * FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) p, LATERAL ({_VILLAGE_SQL}) v"
    row = conn.execute(text(sql), {"lon": lon, "lat": lat}).first()
    if row is None:
        return VillageBasis(
            code=None,
            basis="none",
            note="counts toward no village: no village polygon or approximate village area contains "
            "it; give its village_code (or import the village's boundary or point)",
        )
    note = (
        "inside the village's boundary"
        if row.basis == "polygon"
        else "inside the village's approximate area (Voronoi cell of village points)"
    )
    return VillageBasis(code=row.code, name=row.name, basis=row.basis, note=note)


def villages_near(conn: Connection, lon: float, lat: float, limit: int = 8) -> list[dict]:
    """Village-level units near a point (by boundary or official point), nearest first, so an
    installer can pick the village code from a short list."""
    rows = conn.execute(
        text(
            "SELECT code, name, round(ST_Distance(coalesce(geom, point)::geography, p.g::geography)) AS m "
            "FROM regions, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) p "
            "WHERE level = 5 AND retired_at IS NULL AND coalesce(geom, point) IS NOT NULL "
            "ORDER BY coalesce(geom, point) <-> p.g LIMIT :n"
        ),
        {"lon": lon, "lat": lat, "n": limit},
    ).all()
    return [{"code": r.code, "name": r.name, "distance_m": float(r.m)} for r in rows]


def locate(conn: Connection, lon: float, lat: float) -> tuple[str | None, int | None]:
    """(deepest region code containing the WGS 84 point, base grid id containing it); None if none."""
    row = conn.execute(text(_LOCATE_SQL), {"lon": lon, "lat": lat}).one()
    return row.region_code, row.grid_id


def _audit(conn: Connection, actor: str, action: str, device_id: str | None, detail: dict) -> None:
    conn.execute(
        text(
            "INSERT INTO audit_log (actor, action, entity, entity_id, detail) "
            "VALUES (:actor, :action, 'device', :id, CAST(:detail AS jsonb))"
        ),
        {
            "actor": actor,
            "action": action,
            "id": device_id,
            "detail": json.dumps(detail, default=str),
        },
    )


def _save_registration(conn: Connection, reg: DeviceRegistration) -> None:
    conn.execute(
        text(
            "INSERT INTO device_registrations (device_id, registration, updated_at) "
            "VALUES (:id, CAST(:reg AS jsonb), now()) ON CONFLICT (device_id) DO UPDATE "
            "SET registration = EXCLUDED.registration, updated_at = now()"
        ),
        {"id": reg.id, "reg": reg.model_dump_json(exclude_none=True)},
    )


def _after_change(conn: Connection, points: list[tuple[float, float]]) -> dict | None:
    """Live compliance: recompute the villages and grids around the changed positions."""
    try:
        from geo.live import refresh_points
    except ImportError:
        return None
    return refresh_points(conn, points)


def _actor(actor: str) -> str:
    actor = (actor or "").strip()
    if not actor:
        raise RegistryError("actor", "who made the change must be named (a user name)")
    return actor


def _store(conn: Connection, d: Decoded, actor: str, action: str, extra: dict) -> dict:
    cov = coverage_of(d)
    region, grid = locate(conn, d.lon, d.lat)
    findings = list(d.findings) + cov.assumptions
    village = village_of(conn, d.lon, d.lat, d.reg.village_code)
    if village.basis == "code":
        if region and region[9:] != "000" and region != village.code:
            findings.append(
                f"stands inside village {region} but is registered to village {village.code}; "
                "it counts toward the registered village"
            )
        elif region and not RegionCode.parse(region).contains(village.code):
            findings.append(f"village {village.code} is not inside region {region} where it stands")
        region = village.code
    elif d.kind.has_fov and village.basis == "none":
        findings.append(village.note)
    if region is None:
        findings.append(
            f"position {d.lon:.6f},{d.lat:.6f} (WGS 84) is outside every imported region: "
            "region_code left empty"
        )
    elif not region.startswith(RegionCode.parse(d.reg.id[:6]).prefix):
        findings.append(
            f"id centre code {d.reg.id[:6]} does not match the county {region[:6]} the device stands in"
        )
    if d.kind.has_fov and grid is None and region is not None:
        findings.append("no base grid contains this position")
    area = area_village_of(conn, d.lon, d.lat, region)
    row = conn.execute(upsert_one(given_values(d, cov), region, grid, actor, area)).one()
    _save_registration(conn, d.reg)
    relink_devices(conn, [d.reg.id])
    detail = {
        "kind": d.kind.name,
        "lon": round(d.lon, 7),
        "lat": round(d.lat, 7),
        "crs_given": d.reg.crs,
        "region_code": region,
        "grid_id": grid,
        "findings": findings,
        **extra,
    }
    _audit(conn, actor, action, d.reg.id, detail)
    return {
        "id": d.reg.id,
        "action": action,
        "inserted": bool(row.inserted),
        "kind": d.kind.name,
        "type_code": d.type_code,
        "network_code": d.network_code,
        "gb_edition": d.reg.gb_edition,
        "lon": d.lon,
        "lat": d.lat,
        "region_code": region,
        "grid_id": grid,
        "village_code": village.code,
        "village_basis": village.basis,
        "hfov_deg": cov.hfov_deg,
        "range_m": cov.range_m,
        "fov_geojson": cov.geometry.__geo_interface__ if cov.geometry is not None else None,
        "findings": findings,
    }


class _Tx:
    """Begin/commit on `conn` when the caller has no transaction open; else join the caller's."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.owned = not conn.in_transaction()
        self.tx = None

    def __enter__(self) -> _Tx:
        if self.owned:
            self.tx = self.conn.begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tx is not None:
            if exc_type is None:
                self.tx.commit()
            else:
                self.tx.rollback()


def register_device(
    conn: Connection,
    reg: DeviceRegistration | Mapping[str, Any],
    actor: str,
    *,
    reload_broker: bool = True,
) -> dict:
    """Register (or re-register a retired) device; returns what was stored and any findings.

    RegistryError (a ValueError) names the bad field. An already-registered active id is an
    error: use update_device. A device outside every region is stored with region_code NULL and
    reported in `findings`. Commits when `conn` had no transaction open; otherwise joins it.
    """
    actor = _actor(actor)
    reg = validate_registration(reg)
    d = decode(reg)
    with _Tx(conn) as tx:
        existing = conn.execute(
            text("SELECT retired_at IS NULL AS active FROM devices WHERE id = :id FOR UPDATE"),
            {"id": reg.id},
        ).first()
        if existing is not None and existing.active:
            raise RegistryError(
                "id", f"{reg.id} is already registered; use update to change it", status=409
            )
        action = "device.register" if existing is None else "device.reregister"
        out = _store(conn, d, actor, action, {})
        out["compliance"] = _after_change(conn, [(d.lon, d.lat)])
    _broker_changed(conn, tx.owned, reload_broker, reg.id, True)
    return out


def _current_registration(conn: Connection, device_id: str) -> dict:
    saved = conn.execute(
        text("SELECT registration FROM device_registrations WHERE device_id = :id"),
        {"id": device_id},
    ).first()
    if saved is not None:
        return dict(saved.registration)
    # no saved registration (a device from before they were kept): read it from its columns
    dev = schema.devices
    fields = [dev.c[f] for f in DeviceRegistration.model_fields if f in dev.c]
    stmt = select(
        *fields, func.ST_X(dev.c.position).label("lon"), func.ST_Y(dev.c.position).label("lat")
    ).where(dev.c.id == device_id)
    row = conn.execute(stmt).mappings().one()
    data = {k: v for k, v in row.items() if v is not None}
    data["presets"] = data.get("presets") or []
    return data


def update_device(
    conn: Connection,
    device_id: str,
    changes: Mapping[str, Any],
    actor: str,
    *,
    reload_broker: bool = True,
) -> dict:
    """Change a registered device's fields (a move is a new lon/lat, in `crs` if given).

    The id cannot change (retire and register instead). Coverage, region and grid are recomputed.
    The broker is not touched: a device's credentials do not depend on where it stands
    (`reload_broker` is accepted for symmetry with register/retire).
    """
    actor = _actor(actor)
    changes = dict(changes)
    if "id" in changes and changes["id"] != device_id:
        raise RegistryError("id", "an id cannot change; retire the device and register the new id")
    changes.pop("id", None)
    if "crs" in changes and not ({"lon", "lat"} & changes.keys()):
        raise RegistryError("crs", "give lon and lat with crs (the crs applies to them)")
    unknown = sorted(set(changes) - set(DeviceRegistration.model_fields))
    if unknown:
        raise RegistryError(
            unknown[0],
            f"is not a device field; allowed: {', '.join(DeviceRegistration.model_fields)}",
        )
    with _Tx(conn):
        row = conn.execute(
            text(
                "SELECT ST_X(position) AS lon, ST_Y(position) AS lat, retired_at "
                "FROM devices WHERE id = :id FOR UPDATE"
            ),
            {"id": device_id},
        ).first()
        if row is None:
            raise RegistryError("id", f"{device_id} is not registered", status=404)
        if row.retired_at is not None:
            raise RegistryError(
                "id",
                f"{device_id} was retired at {row.retired_at:%Y-%m-%d %H:%M}; register it again",
            )
        current = _current_registration(conn, device_id)
        current["lon"], current["lat"], current["crs"] = row.lon, row.lat, "wgs84"
        merged = {**current, **changes}
        if {"lon", "lat"} & changes.keys():
            merged.setdefault("crs", "wgs84")
            if "crs" not in changes:
                merged["crs"] = "wgs84"
        reg = validate_registration(merged)
        d = decode(reg)
        changed = sorted(k for k in changes if current.get(k) != changes[k])
        moved = bool({"lon", "lat"} & set(changed))
        extra = {"changed": changed}
        if moved:
            extra["from"] = [row.lon, row.lat]
        out = _store(conn, d, actor, "device.move" if moved else "device.update", extra)
        points = [(d.lon, d.lat)] + ([(row.lon, row.lat)] if moved and row.lon is not None else [])
        out["compliance"] = _after_change(conn, points)
    return out


def retire_device(
    conn: Connection, device_id: str, actor: str, *, reload_broker: bool = True
) -> dict:
    """Retire a device: it stays in history, stops counting, and loses broker access."""
    actor = _actor(actor)
    with _Tx(conn) as tx:
        row = conn.execute(
            text(
                "UPDATE devices SET retired_at = now(), updated_at = now() "
                "WHERE id = :id AND retired_at IS NULL "
                "RETURNING ST_X(position) AS lon, ST_Y(position) AS lat, region_code, grid_id"
            ),
            {"id": device_id},
        ).first()
        if row is None:
            known = conn.execute(
                text("SELECT 1 FROM devices WHERE id = :id"), {"id": device_id}
            ).first()
            reason = "is already retired" if known else "is not registered"
            raise RegistryError("id", f"{device_id} {reason}", status=409 if known else 404)
        _audit(
            conn,
            actor,
            "device.retire",
            device_id,
            {"region_code": row.region_code, "grid_id": row.grid_id},
        )
        out = {
            "id": device_id,
            "action": "device.retire",
            "region_code": row.region_code,
            "grid_id": row.grid_id,
        }
        out["compliance"] = (
            _after_change(conn, [(row.lon, row.lat)]) if row.lon is not None else None
        )
    _broker_changed(conn, tx.owned, reload_broker, device_id, False)
    return out


# --- broker ------------------------------------------------------------------------------------

BROKER_CHANNEL = "gw_broker"  # NOTIFY payload: a device id whose broker access changed


def notify_broker(conn: Connection, device_ids: Iterable[str]) -> None:
    """Tell the broker provisioner (ingest.provision) that these devices' access changed.

    A NOTIFY in the caller's transaction: it is delivered when (and only if) the change commits,
    so no one polls for visibility. The provisioner re-reads each device and creates, re-keys or
    removes its broker client."""
    ids = sorted(set(device_ids))
    for start in range(0, len(ids), 1000):
        conn.execute(
            text("SELECT pg_notify(:ch, i) FROM unnest(CAST(:ids AS text[])) AS i"),
            {"ch": BROKER_CHANNEL, "ids": ids[start : start + 1000]},
        )


def _broker_changed(
    conn: Connection, owned: bool, enabled: bool, device_id: str, active: bool
) -> None:
    """Notify the provisioner: inside the transaction when the caller's, else in a short one."""
    if not enabled:
        return
    if owned:
        with conn.begin():
            notify_broker(conn, [device_id])
    else:
        notify_broker(conn, [device_id])


# --- GeoJSON -----------------------------------------------------------------------------------


def device_geojson(
    conn: Connection,
    *,
    region_code: str | None = None,
    device_ids: Iterable[str] | None = None,
    include_fov: bool = True,
    include_retired: bool = False,
    limit: int = 100_000,
) -> dict:
    """Devices as a GeoJSON FeatureCollection (WGS 84): a point per device, plus its FOV sector.

    Filter by a region code (the region and everything below it) and/or explicit ids. FOV
    features carry `"layer": "fov"`, device points `"layer": "device"`.
    """
    where = ["TRUE"]
    params: dict[str, Any] = {"limit": limit}
    if not include_retired:
        where.append("d.retired_at IS NULL")
    if region_code is not None:
        prefix = RegionCode.parse(region_code).prefix
        where.append("d.region_code BETWEEN CAST(:low AS char(12)) AND CAST(:high AS char(12))")
        params["low"], params["high"] = prefix.ljust(12, "0"), prefix.ljust(12, "9")
    if device_ids is not None:
        where.append("d.id = ANY(CAST(:ids AS char(20)[]))")
        params["ids"] = list(device_ids)
    rows = conn.execute(
        text(
            "SELECT d.id, d.name, d.kind, d.sub_kind, d.status, d.networked, d.region_code, "
            "d.grid_id, d.heading_deg, d.hfov_deg, d.range_m, d.ptz, d.resolution_w, "
            "d.resolution_h, d.last_seen, d.retired_at, ST_AsGeoJSON(d.position, 7) AS point, "
            + ("ST_AsGeoJSON(d.fov, 7)" if include_fov else "NULL")
            + " AS fov FROM devices d WHERE "
            + " AND ".join(where)
            + " ORDER BY d.id LIMIT :limit"
        ),
        params,
    ).mappings()
    features: list[dict] = []
    for r in rows:
        props = {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in r.items()
            if k not in ("point", "fov")
        }
        if r["point"] is not None:
            features.append(
                {
                    "type": "Feature",
                    "id": r["id"],
                    "geometry": json.loads(r["point"]),
                    "properties": {**props, "layer": "device"},
                }
            )
        if r["fov"] is not None:
            features.append(
                {
                    "type": "Feature",
                    "id": f"{r['id']}/fov",
                    "geometry": json.loads(r["fov"]),
                    "properties": {
                        "id": r["id"],
                        "kind": r["kind"],
                        "status": r["status"],
                        "layer": "fov",
                    },
                }
            )
    return {"type": "FeatureCollection", "features": features}
