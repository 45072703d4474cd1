"""The `devices` row a registration writes: its columns, values and upserts, derived from gridwatch.schema."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import case, func, literal_column, null
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.dml import ReturningInsert

from gridwatch.dbroles import DEVICE_LIVE_STATE
from gridwatch.schema import devices
from hardware.sector import sectors_ewkb

# Columns a registration does not set: the live state ingest keeps (with `origin`, the hub the
# row was made at: its default, federation/), and the bookkeeping the upserts set themselves
# (who registered and when survive an update of an active device).
NOT_REGISTERED = frozenset(
    {*DEVICE_LIVE_STATE, "registered_by", "registered_at", "updated_at", "retired_at"}
)
# Columns PostGIS fills from the position (region, base grid and approximate village), not the
# registration.
LOCATED = ("region_code", "grid_id", "area_village_code")
#: Every column a registration writes, in the table's order.
REGISTERED = tuple(c.name for c in devices.c if c.name not in NOT_REGISTERED)
#: The columns given per device (the located ones are computed from them).
GIVEN = tuple(name for name in REGISTERED if name not in LOCATED)


def ewkb(geom: BaseGeometry | None) -> str | None:
    """Hex EWKB with SRID 4326: what a geometry(…, 4326) column takes by COPY or a bound value."""
    if geom is None:
        return None
    return str(shapely.to_wkb(shapely.set_srid(geom, 4326), hex=True, include_srid=True))


def ewkb_many(geoms: Any) -> list[str | None]:
    """ewkb() of many geometries at once (None stays None): binary WKB by shapely's vectorised
    writer, hex by bytes.hex, several times faster than hex WKB from shapely per geometry."""
    return [None if b is None else b.hex().upper() for b in ewkb_bytes_many(geoms)]


def ewkb_bytes_many(geoms: Any) -> list[bytes | None]:
    """The binary EWKB (SRID 4326) of many geometries (None stays None): what a geometry column
    receives in a binary COPY."""
    arr = shapely.set_srid(np.asarray(geoms, dtype=object), 4326)
    return list(shapely.to_wkb(arr, include_srid=True))


def fov_ewkb_many(covs: Any) -> list[bytes | None]:
    """The binary EWKB (SRID 4326) of many coverages' shapes (geo.coverage.Coverage; None
    without one): drawn shapes as ewkb_bytes_many writes them, pending sectors and discs
    written in one vectorised call without a geometry each (hardware.sector.sectors_ewkb, the
    same bytes)."""
    out = ewkb_bytes_many([c.geometry for c in covs])
    todo = [i for i, c in enumerate(covs) if c.pending is not None]
    if todo:
        specs = np.array([covs[i].pending for i in todo], dtype=float)
        for i, b in zip(todo, sectors_ewkb(*specs.T), strict=True):
            out[i] = b
    return out


def given_row(
    d: Any, cov: Any, *, position: str | bytes | None = None, fov: str | bytes | None = None
) -> tuple[Any, ...]:
    """The GIVEN columns of one decoded registration (geo.registry.Decoded) and its coverage,
    in GIVEN order: a bulk import's staging row, without a dict per row.

    `position` and `fov` may be given as EWKB already (hex by ewkb_many, or binary by
    sectors_ewkb and points_ewkb for a binary COPY), for a batch."""
    reg = d.reg
    return (
        reg.id,
        reg.gb_edition,
        d.type_code,
        d.kind.name,
        reg.sub_kind,
        reg.name,
        d.network_code,
        d.industry_code,
        reg.resource_class,
        reg.vendor,
        reg.model,
        position or ewkb(shapely.Point(d.lon, d.lat)),
        reg.mount_height_m,
        reg.heading_deg,
        reg.focal_mm,
        reg.focal_max_mm,
        reg.sensor_format,
        reg.resolution_w,
        reg.resolution_h,
        cov.hfov_deg,
        cov.range_m,
        reg.ptz,
        [p.model_dump() for p in reg.presets] if reg.presets else None,
        fov if fov is not None else ewkb(cov.geometry),
        reg.networked,
        reg.stream_url,
        reg.heartbeat_s or d.kind.heartbeat_s,
        reg.village_code,
    )


# The columns given_row returns, in its order: a column added to schema.devices must be given a
# value there (or be excluded above).
_ROW_ORDER = (
    "id",
    "gb_edition",
    "type_code",
    "kind",
    "sub_kind",
    "name",
    "network_code",
    "industry_code",
    "resource_class",
    "vendor",
    "model",
    "position",
    "mount_height_m",
    "heading_deg",
    "focal_mm",
    "focal_max_mm",
    "sensor_format",
    "resolution_w",
    "resolution_h",
    "hfov_deg",
    "range_m",
    "ptz",
    "presets",
    "fov",
    "networked",
    "stream_url",
    "heartbeat_s",
    "village_code",
)
if _ROW_ORDER != GIVEN:
    raise RuntimeError(
        f"devices columns and given_row differ: {sorted(set(_ROW_ORDER) ^ set(GIVEN))} "
        "(or their order)"
    )


def given_values(
    d: Any, cov: Any, *, position: str | bytes | None = None, fov: str | bytes | None = None
) -> dict[str, Any]:
    """given_row as a dict (column -> value)."""
    return dict(zip(GIVEN, given_row(d, cov, position=position, fov=fov), strict=True))


def _on_conflict_set(excluded: Any) -> dict[str, Any]:
    """An update of a known id: every registered column, un-retired; a re-registration of a
    retired id takes the new registrant and time, an active one keeps the original."""
    still_active = devices.c.retired_at.is_(None)
    out: dict[str, Any] = {name: excluded[name] for name in REGISTERED if name != "id"}
    out.update(
        updated_at=func.now(),
        retired_at=null(),
        registered_by=case((still_active, devices.c.registered_by), else_=excluded.registered_by),
        registered_at=case((still_active, devices.c.registered_at), else_=func.now()),
    )
    return out


def upsert_one(
    values: dict[str, Any],
    region: str | None,
    grid: int | None,
    actor: str,
    area_village: str | None = None,
) -> ReturningInsert[Any]:
    """INSERT ... ON CONFLICT (id) DO UPDATE of one device, RETURNING inserted (new id or not)."""
    row = dict(values)
    if row["presets"] is None:
        row["presets"] = null()  # SQL NULL, not the JSON null a None would become
    stmt = insert(devices).values(
        **row,
        region_code=region,
        grid_id=grid,
        area_village_code=area_village,
        registered_by=actor,
        registered_at=func.now(),
        updated_at=func.now(),
        retired_at=null(),
    )
    return stmt.on_conflict_do_update(
        index_elements=[devices.c.id], set_=_on_conflict_set(stmt.excluded)
    ).returning(literal_column("(xmax = 0)").label("inserted"))


# How each GIVEN column goes into a binary COPY: the PostgreSQL type whose psycopg binary
# dumper writes it (char(n) and text share the binary form of text). Geometry and jsonb go as
# bytes made by the caller: EWKB (geometry_recv), and b"\x01" + the JSON text (jsonb_recv's
# version 1).
_BINARY_BY_TYPE = {
    "CHAR": "text",
    "Text": "text",
    "SmallInteger": "int2",
    "Integer": "int4",
    "REAL": "float4",
    "Boolean": "bool",
    "JSONB": "bytea",
    "Geometry": "bytea",
}


def binary_copy_types() -> list[str]:
    """The binary COPY type of every GIVEN column, then the registration's (jsonb, as bytes)."""
    out = []
    for name in GIVEN:
        kind = type(devices.c[name].type).__name__
        if kind not in _BINARY_BY_TYPE:  # a column type added to devices: say how it is copied
            raise RuntimeError(f"devices.{name}: no binary COPY type for {kind}")
        out.append(_BINARY_BY_TYPE[kind])
    return [*out, "bytea"]


def jsonb_binary(json_text: str | bytes) -> bytes:
    """A JSON text (str or UTF-8 bytes) as jsonb's binary form (version 1, then the text)."""
    return b"\x01" + (json_text if isinstance(json_text, bytes) else json_text.encode())


def bulk_temp_table_sql(name: str) -> str:
    """DDL of the session's staging table for COPY: the GIVEN columns with the types of
    `devices` itself, plus the registration as given (jsonb); dropped at commit."""
    cols = ", ".join(GIVEN)
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {name} ON COMMIT DROP AS "
        f"SELECT {cols}, CAST(NULL AS jsonb) AS registration FROM devices WITH NO DATA"
    )


def bulk_upsert_sql(source: str, *, upsert: bool = True) -> str:
    """INSERT ... SELECT of every row of `source` (GIVEN columns plus the LOCATED ones),
    with the same conflict rule as upsert_one for every row; RETURNING inserted and outside.

    upsert=False: a plain INSERT, for rows none of whose ids is stored (a known id raises
    unique_violation instead of being updated); it spares the speculative insertion and the
    conflict check of every row."""
    excluded_sets = ", ".join(f"{n} = EXCLUDED.{n}" for n in REGISTERED if n != "id")
    head = (
        f"INSERT INTO devices AS d ({', '.join(REGISTERED)}, registered_by, registered_at, "
        "updated_at, retired_at) "
        f"SELECT {', '.join(REGISTERED)}, :actor, now(), now(), NULL FROM {source} "
    )
    if not upsert:
        return head + "RETURNING true AS inserted, region_code IS NULL AS outside"
    return (
        head
        + f"ON CONFLICT (id) DO UPDATE SET {excluded_sets}, updated_at = now(), retired_at = NULL, "
        "registered_by = CASE WHEN d.retired_at IS NULL THEN d.registered_by "
        "ELSE EXCLUDED.registered_by END, "
        "registered_at = CASE WHEN d.retired_at IS NULL THEN d.registered_at ELSE now() END "
        "RETURNING (xmax = 0) AS inserted, region_code IS NULL AS outside"
    )
