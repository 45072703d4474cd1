"""Bulk device registration for generators and imports: validate in Python, COPY, one INSERT ... SELECT."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

import shapely
from sqlalchemy import Connection, text

from geo.coverage import DEFAULT_DORI
from geo.registry import (
    DeviceRegistration,
    RegistryError,
    _actor,
    _audit,
    _Tx,
    coverage_of,
    decode,
    notify_broker,
    refresh_broker,
    validate_registration,
)
from geo.views import relink_devices

log = logging.getLogger(__name__)

_COLUMNS = (
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
    "lon",
    "lat",
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
    "registration",
    "village_code",
)

_TEMP_DDL = """
CREATE TEMP TABLE IF NOT EXISTS _bulk_devices (
  id char(20), gb_edition smallint, type_code char(3), kind text, sub_kind text, name text,
  network_code smallint, industry_code char(2), resource_class smallint, vendor text, model text,
  lon double precision, lat double precision, mount_height_m real, heading_deg real, focal_mm real,
  focal_max_mm real, sensor_format text, resolution_w integer, resolution_h integer, hfov_deg real,
  range_m real, ptz boolean, presets jsonb, fov geometry, networked boolean, stream_url text,
  heartbeat_s integer, registration jsonb, village_code char(12)
) ON COMMIT DROP
"""

# Region: the administrative village containing the point if any, else the deepest region.
_INSERT_SQL = """
WITH src AS (
  SELECT b.*, ST_SetSRID(ST_MakePoint(b.lon, b.lat), 4326) AS position FROM _bulk_devices b
), located AS (
  SELECT s.*,
    coalesce(
      (SELECT r.code FROM regions r WHERE r.code = s.village_code AND r.level = 5),
      (SELECT r.code FROM regions r WHERE r.level = 5 AND r.geom && s.position
         AND ST_Covers(r.geom, s.position) AND r.retired_at IS NULL ORDER BY r.code LIMIT 1),
      (SELECT r.code FROM regions r WHERE r.level < 5 AND r.geom && s.position
         AND ST_Covers(r.geom, s.position) AND r.retired_at IS NULL
         ORDER BY r.level DESC, r.code LIMIT 1)) AS region_code,
    (SELECT g.id FROM grids g WHERE g.level = 3 AND g.geom && s.position
       AND ST_Covers(g.geom, s.position) ORDER BY g.id LIMIT 1) AS grid_id
  FROM src s
), ins AS (
  INSERT INTO devices AS d (
    id, gb_edition, type_code, kind, sub_kind, name, network_code, industry_code, resource_class,
    vendor, model, position, mount_height_m, heading_deg, focal_mm, focal_max_mm, sensor_format,
    resolution_w, resolution_h, hfov_deg, range_m, ptz, presets, fov, region_code, grid_id,
    networked, stream_url, heartbeat_s, registered_by, registered_at, updated_at, retired_at,
    village_code)
  SELECT id, gb_edition, type_code, kind, sub_kind, name, network_code, industry_code,
    resource_class, vendor, model, position, mount_height_m, heading_deg, focal_mm, focal_max_mm,
    sensor_format, resolution_w, resolution_h, hfov_deg, range_m, ptz, presets,
    ST_SetSRID(fov, 4326), region_code, grid_id, networked, stream_url, heartbeat_s, :actor,
    now(), now(), NULL, village_code
  FROM located
  ON CONFLICT (id) DO UPDATE SET
    gb_edition = EXCLUDED.gb_edition, type_code = EXCLUDED.type_code, kind = EXCLUDED.kind,
    sub_kind = EXCLUDED.sub_kind, name = EXCLUDED.name, network_code = EXCLUDED.network_code,
    industry_code = EXCLUDED.industry_code, resource_class = EXCLUDED.resource_class,
    vendor = EXCLUDED.vendor, model = EXCLUDED.model, position = EXCLUDED.position,
    mount_height_m = EXCLUDED.mount_height_m, heading_deg = EXCLUDED.heading_deg,
    focal_mm = EXCLUDED.focal_mm, focal_max_mm = EXCLUDED.focal_max_mm,
    sensor_format = EXCLUDED.sensor_format, resolution_w = EXCLUDED.resolution_w,
    resolution_h = EXCLUDED.resolution_h, hfov_deg = EXCLUDED.hfov_deg,
    range_m = EXCLUDED.range_m, ptz = EXCLUDED.ptz, presets = EXCLUDED.presets, fov = EXCLUDED.fov,
    region_code = EXCLUDED.region_code, grid_id = EXCLUDED.grid_id,
    networked = EXCLUDED.networked, stream_url = EXCLUDED.stream_url,
    heartbeat_s = EXCLUDED.heartbeat_s, village_code = EXCLUDED.village_code, updated_at = now(),
    retired_at = NULL
  RETURNING (xmax = 0) AS inserted, region_code IS NULL AS outside
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated,
       count(*) FILTER (WHERE outside) AS outside
FROM ins
"""

# Rows equal to what is stored (same registration, device active) are left alone: an import
# run twice changes nothing.
_UNCHANGED_SQL = """
DELETE FROM _bulk_devices b USING device_registrations r JOIN devices d ON d.id = r.device_id
WHERE r.device_id = b.id AND r.registration = b.registration AND d.retired_at IS NULL
RETURNING b.id
"""

_REGISTRATIONS_SQL = """
INSERT INTO device_registrations (device_id, registration, updated_at)
SELECT id, registration, now() FROM _bulk_devices
ON CONFLICT (device_id) DO UPDATE SET registration = EXCLUDED.registration, updated_at = now()
"""


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _row(reg: DeviceRegistration, level: str) -> tuple:
    d = decode(reg)
    cov = coverage_of(d, level)
    presets = json.dumps([p.model_dump() for p in reg.presets]) if reg.presets else None
    fov = shapely.to_wkb(cov.geometry, hex=True) if cov.geometry is not None else None
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
        d.lon,
        d.lat,
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
        presets,
        fov,
        reg.networked,
        reg.stream_url,
        reg.heartbeat_s or d.kind.heartbeat_s,
        reg.model_dump_json(exclude_none=True),
        reg.village_code,
    )


def register_many(
    conn: Connection,
    regs: Iterable[DeviceRegistration | Mapping[str, Any]],
    actor: str,
    *,
    level: str = DEFAULT_DORI,
    batch: int = 20_000,
    skip_invalid: bool = False,
    reload_broker: bool = True,
    refresh_compliance: bool = True,
    skip_unchanged: bool = False,
    dry_run: bool = False,
) -> dict:
    """Register many devices at once (new ids inserted, known ids updated and un-retired).

    The FOV of each camera comes from the same hardware optics and sector functions as a single
    registration; rows go in by COPY and one INSERT ... SELECT per batch, which also locates each
    device (administrative village, else the deepest region; base grid). One audit_log row
    records the batch. With skip_invalid, bad rows are reported (index, id, field, reason)
    instead of raising RegistryError. With skip_unchanged, rows equal to the stored registration
    are counted as `unchanged` and not written; with dry_run everything is checked and counted,
    then rolled back (the caller's transaction is left as it was, by a savepoint).
    """
    actor = _actor(actor)
    totals = {"inserted": 0, "updated": 0, "outside": 0, "unchanged": 0, "rejected": []}
    known_villages: dict[str, bool] = {}
    seen: set[str] = set()
    with _Tx(conn) as tx:
        index = 0
        for chunk in _chunks(regs, batch):
            rows = []
            stored = _stored_registrations(conn, chunk) if skip_unchanged else {}
            for raw in chunk:
                try:
                    reg = validate_registration(raw)
                    if reg.id in seen:
                        raise RegistryError("id", f"{reg.id} appears twice in this batch")
                    if reg.village_code and not _village_ok(conn, reg.village_code, known_villages):
                        raise RegistryError(
                            "village_code",
                            f"{reg.village_code} is not an imported, not retired village-level unit",
                        )
                    seen.add(reg.id)
                    if stored and stored.get(reg.id) == json.loads(
                        reg.model_dump_json(exclude_none=True)
                    ):
                        totals["unchanged"] += 1  # equal to what is stored: no FOV, no write
                        index += 1
                        continue
                    rows.append(_row(reg, level))
                except RegistryError as exc:
                    if not skip_invalid:
                        raise RegistryError(exc.field, f"row {index}: {exc.reason}") from None
                    rid = raw.get("id") if isinstance(raw, Mapping) else getattr(raw, "id", None)
                    totals["rejected"].append(
                        {"index": index, "id": rid, "field": exc.field, "reason": exc.reason}
                    )
                index += 1
            if not rows:
                continue
            conn.execute(text(_TEMP_DDL))
            conn.execute(text("TRUNCATE _bulk_devices"))
            raw_conn = conn.connection.driver_connection
            with raw_conn.cursor() as cur:
                with cur.copy(f"COPY _bulk_devices ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            if skip_unchanged:
                totals["unchanged"] += len(conn.execute(text(_UNCHANGED_SQL)).all())
            if dry_run:
                save = conn.begin_nested()
            counts = conn.execute(text(_INSERT_SQL), {"actor": actor}).one()
            conn.execute(text(_REGISTRATIONS_SQL))
            relink_devices(conn, from_table="_bulk_devices")
            totals["inserted"] += counts.inserted
            totals["updated"] += counts.updated
            totals["outside"] += counts.outside
            if dry_run:
                save.rollback()
        total = 0 if dry_run else totals["inserted"] + totals["updated"]
        if total >= 1000:
            # The planner's picture of the fleet changes with a big import; autovacuum analyzes
            # devices rarely (migration 0008: presence writes would trigger it every minute).
            conn.execute(text("ANALYZE devices"))
        if total:
            _audit(
                conn,
                actor,
                "device.bulk_register",
                None,
                {k: (len(v) if isinstance(v, list) else v) for k, v in totals.items()},
            )
            if refresh_compliance:
                _refresh_all(conn)
    if reload_broker and total:
        if tx.owned:
            refresh_broker()
        else:  # the provisioner reconciles every device once the caller commits
            notify_broker(conn, ["*"])
    totals["devices"] = total
    return totals


def _stored_registrations(conn: Connection, chunk: list) -> dict[str, dict]:
    """The stored registrations of the active devices among a chunk's ids."""
    ids = [str(r.get("id") if isinstance(r, Mapping) else getattr(r, "id", "")) for r in chunk]
    rows = conn.execute(
        text(
            "SELECT r.device_id, r.registration FROM device_registrations r JOIN devices d "
            "ON d.id = r.device_id WHERE r.device_id = ANY(CAST(:ids AS char(20)[])) "
            "AND d.retired_at IS NULL"
        ),
        {"ids": ids},
    ).all()
    return {r.device_id: r.registration for r in rows}


def _village_ok(conn: Connection, code: str, cache: dict[str, bool]) -> bool:
    if code not in cache:
        cache[code] = bool(
            conn.execute(
                text("SELECT 1 FROM regions WHERE code = :c AND level = 5 AND retired_at IS NULL"),
                {"c": code},
            ).first()
        )
    return cache[code]


def _refresh_all(conn: Connection) -> None:
    try:
        from geo.live import refresh_all
    except ImportError:
        return
    refresh_all(conn)
