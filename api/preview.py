"""Registration preview: the coverage sector a device would have and the rules it would help."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, text

from geo.registry import (
    DeviceRegistration,
    RegistryError,
    coverage_of,
    decode,
    village_of,
    villages_near,
)
from hardware.crs import utm_srid
from hardware.sector import to_wkt

POINT_MERGE_M = 15.0  # cameras closer than this are one monitoring point (DESIGN §5.4)


class RuleEffect(BaseModel):
    """One rule the new device would count towards, with the state before and after."""

    rule: str
    unit: str
    unit_name: str | None = None
    before: float | None = None
    after: float | None = None
    target: float | None = None
    passes_after: bool | None = None
    note: str


class Preview(BaseModel):
    """What saving this registration would store, before it is saved."""

    id: str
    kind: str
    kind_label: str
    lon: float
    lat: float
    region_code: str | None
    region_name: str | None = None
    village_code: str | None = None
    village_name: str | None = None
    village_basis: str | None = None
    counts_toward_village: bool = False
    villages_near: list[dict[str, Any]] = []
    grid_id: int | None = None
    grid_name: str | None = None
    hfov_deg: float | None = None
    range_m: float | None = None
    sector: dict[str, Any] | None = None
    already_registered: bool = False
    findings: list[str] = []
    rules: list[RuleEffect] = []


# devices that count toward village :c — by its code, its polygon, or its approximate area
# (the approximate village is stored: devices.area_village_code)
_COUNTS_IN = (
    "(d.region_code = :c OR d.village_code = :c OR (d.village_code IS NULL "
    "AND d.area_village_code = :c))"
)


def _village_rule(
    conn: Connection, code: str, name: str, lon: float, lat: float, device_id: str
) -> RuleEffect:
    """Monitoring points in the administrative village, now and with this camera."""
    required = 5
    row = conn.execute(
        text("SELECT points, points_required FROM village_compliance WHERE village_code = :c"),
        {"c": code},
    ).first()
    if row is not None:
        required = int(row.points_required)
    points = conn.execute(
        text(
            "SELECT count(*) FROM (SELECT ST_ClusterDBSCAN(ST_Transform(position, :utm), :eps, 1) "
            f"OVER () AS c FROM devices d WHERE {_COUNTS_IN} AND retired_at IS NULL AND networked "
            "AND fov IS NOT NULL AND id <> :id) s GROUP BY c"
        ),
        {"c": code, "eps": POINT_MERGE_M, "id": device_id, "utm": utm_srid(lon, lat)},
    ).all()
    before = len(points)
    near = conn.execute(
        text(
            f"SELECT EXISTS (SELECT 1 FROM devices d WHERE {_COUNTS_IN} AND retired_at IS NULL "
            "AND fov IS NOT NULL AND id <> :id AND ST_DWithin(position::geography, "
            "ST_SetSRID(ST_MakePoint(:x,:y),4326)::geography, :eps))"
        ),
        {"c": code, "x": lon, "y": lat, "eps": POINT_MERGE_M, "id": device_id},
    ).scalar()
    after = before if near else before + 1
    note = (
        f"joins an existing monitoring point (within {POINT_MERGE_M:g} m): still {after} of {required}"
        if near
        else f"a new monitoring point: {before} -> {after} of {required}"
    )
    return RuleEffect(
        rule="village_monitoring_points",
        unit=code,
        unit_name=name,
        before=before,
        after=after,
        target=required,
        passes_after=after >= required,
        note=note,
    )


def _intersection_rules(conn: Connection, sector_wkt: str) -> list[RuleEffect]:
    """Main intersections of natural villages that the sector reaches."""
    rows = conn.execute(
        text(
            "SELECT i.id, coalesce(i.name, 'intersection ' || i.id) AS name, nv.name AS village, nv.local_code "
            "FROM intersections i LEFT JOIN natural_villages nv ON nv.id = i.natural_village_id "
            "WHERE i.is_main AND ST_Intersects(i.geom, ST_GeomFromText(:s, 4326)) ORDER BY i.id LIMIT 20"
        ),
        {"s": sector_wkt},
    ).all()
    return [
        RuleEffect(
            rule="natural_village_intersections",
            unit=r.local_code or str(r.id),
            unit_name=r.village,
            note=f"covers main intersection {r.name}"
            + (f" of natural village {r.village}" if r.village else ""),
        )
        for r in rows
    ]


def _key_site_rules(conn: Connection, sector_wkt: str) -> list[RuleEffect]:
    rows = conn.execute(
        text(
            "SELECT id, name, kind FROM key_sites WHERE ST_Intersects(geom, ST_GeomFromText(:s, 4326)) "
            "ORDER BY id LIMIT 20"
        ),
        {"s": sector_wkt},
    ).all()
    return [
        RuleEffect(
            rule="key_sites_watched",
            unit=str(r.id),
            unit_name=r.name,
            note=f"watches key site {r.name} ({r.kind})",
        )
        for r in rows
    ]


def preview(
    conn: Connection,
    reg: DeviceRegistration,
    lon: float,
    lat: float,
    region: str | None,
    grid: int | None,
) -> Preview:
    """The preview of a registration already checked by api.placement (WGS 84 lon/lat given)."""
    d = decode(reg)
    cov = coverage_of(d)
    region_name = (
        conn.execute(text("SELECT name FROM regions WHERE code = :c"), {"c": region}).scalar()
        if region
        else None
    )
    grid_name = (
        conn.execute(text("SELECT name FROM grids WHERE id = :g"), {"g": grid}).scalar()
        if grid
        else None
    )
    exists = conn.execute(
        text("SELECT retired_at IS NULL FROM devices WHERE id = :id"), {"id": reg.id}
    ).scalar()
    findings = list(d.findings) + list(cov.assumptions)
    if exists:
        findings.append(f"{reg.id} is already registered: saving will be refused (use move/update)")
    out = Preview(
        id=reg.id,
        kind=d.kind.name,
        kind_label=d.kind.label,
        lon=lon,
        lat=lat,
        region_code=region,
        region_name=region_name,
        grid_id=grid,
        grid_name=grid_name,
        hfov_deg=cov.hfov_deg,
        range_m=cov.range_m,
        sector=cov.geometry.__geo_interface__ if cov.geometry is not None else None,
        already_registered=bool(exists),
        findings=findings,
    )
    out.sector = _plain(out.sector)
    try:
        village = village_of(conn, lon, lat, reg.village_code)
    except RegistryError as exc:
        out.findings.append(str(exc))
        village = village_of(conn, lon, lat)
    out.village_code, out.village_name, out.village_basis = (
        village.code,
        village.name,
        village.basis,
    )
    out.counts_toward_village = village.code is not None
    out.villages_near = villages_near(conn, lon, lat)
    if village.code is None:
        if d.kind.has_fov:
            out.findings.append(
                "this camera would count toward no village: " + village.note.split(": ", 1)[-1]
            )
    elif d.kind.has_fov:
        out.rules.append(_village_rule(conn, village.code, village.name or "", lon, lat, reg.id))
    if cov.geometry is not None:
        wkt = to_wkt(cov.geometry)
        out.rules += _intersection_rules(conn, wkt)
        out.rules += _key_site_rules(conn, wkt)
    if grid is not None and d.kind.has_fov:
        cams = conn.execute(
            text(
                "SELECT count(*) FROM devices WHERE grid_id = :g AND retired_at IS NULL AND fov IS NOT NULL AND id <> :id"
            ),
            {"g": grid, "id": reg.id},
        ).scalar()
        out.rules.append(
            RuleEffect(
                rule="grid_cameras",
                unit=str(grid),
                unit_name=grid_name,
                before=cams,
                after=cams + 1,
                note=f"base grid {grid_name or grid}: {cams} -> {cams + 1} cameras",
            )
        )
    return out


def _plain(value: Any) -> Any:
    """Tuples from __geo_interface__ -> lists, so the answer is plain JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
