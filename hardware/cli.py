"""`gridwatch id ...` and `gridwatch optics`: the hardware package's commands."""

from __future__ import annotations

import json
from typing import NoReturn

import typer
from rich.table import Table

from gridwatch.console import console, fail
from hardware.gbid import (
    DEFAULT_EDITION,
    DeviceId,
    DivisionCode,
    GbIdError,
    allocate_ids,
    parse_code,
)
from hardware.kinds import kind as kind_spec
from hardware.kinds import kind_for_type
from hardware.optics import DORI_PPM, OpticsError, optics
from hardware.region_code import region_prefix

id_app = typer.Typer(
    help="GB/T 28181 device and channel IDs: decode and allocate.", no_args_is_help=True
)


def _fail(message: str, code: int = 2) -> NoReturn:
    fail(message, code)


def _check_edition(edition: int) -> int:
    if edition not in (2016, 2022):
        _fail(f"--edition: {edition} is not a GB/T 28181 edition (allowed 2016, 2022)")
    return edition


def _db_divisions_and_ids(region: str) -> tuple[set[str], list[str]]:
    """Known division codes and existing device IDs under a region, from the database."""
    from sqlalchemy import text

    from gridwatch.db import get_engine

    prefix = region_prefix(region)
    with get_engine().connect() as conn:
        codes = {r[0] for r in conn.execute(text("SELECT code FROM regions"))}
        ids = [
            r[0]
            for r in conn.execute(
                text("SELECT id FROM devices WHERE id LIKE :p"), {"p": prefix + "%"}
            )
        ]
    return codes, ids


def _id_rows(d: DeviceId) -> list[tuple[str, str, str]]:
    kind = kind_for_type(d.type_code, d.edition)
    return [
        ("1-2", "province", f"{d.province} {d.province_name}"),
        ("3-4", "city", d.city),
        ("5-6", "county", d.county),
        ("7-8", "grassroots unit", d.unit),
        ("1-8", "centre code", f"{d.code[:8]} ({d.centre_level} level)"),
        ("9-10", "industry", f"{d.industry} {d.industry_meaning}"),
        ("11-13", "type", f"{d.type_code:03d} {d.type_meaning} ({d.type_family})"),
        ("", "gridwatch kind", kind.name + (" [flagged: unassigned type]" if kind.flagged else "")),
        ("14", "network", f"{d.network} {d.network_meaning} (read as {d.edition} edition)"),
        ("15-20", "serial", d.serial),
    ]


@id_app.command("decode")
def id_decode_cmd(
    code: str = typer.Argument(..., help="A 20-digit ID or a 2/4/6/8-digit division code."),
    edition: int = typer.Option(DEFAULT_EDITION, help="Edition the ID was issued under."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Decode a GB/T 28181 code, naming every field."""
    _check_edition(edition)
    try:
        parsed = parse_code(code, edition=edition)
    except GbIdError as exc:
        _fail(str(exc))
        return
    if as_json:
        data = parsed.model_dump()
        if isinstance(parsed, DeviceId):
            kind = kind_for_type(parsed.type_code, parsed.edition)
            data["kind"] = kind.name
            data["kind_flagged"] = kind.flagged
        data["is_device_id"] = isinstance(parsed, DeviceId)
        print(json.dumps(data, ensure_ascii=False))
        return
    if isinstance(parsed, DivisionCode):
        table = Table("field", "value", title=f"{parsed.code}: division code ({parsed.level})")
        table.add_row("province", f"{parsed.province} {parsed.province_name}")
        for name in ("city", "county", "unit"):
            value = getattr(parsed, name)
            if value is not None:
                table.add_row(name, value)
        table.add_row("checked against", parsed.checked_against)
        console.print(table)
        return
    table = Table("digits", "field", "value", title=f"{parsed.code} (GB/T 28181-{edition})")
    for row in _id_rows(parsed):
        table.add_row(*row)
    console.print(table)


@id_app.command("new")
def id_new_cmd(
    region: str = typer.Option(..., help="Division code of the centre: 2-8 or 12 digits."),
    kind: str = typer.Option(..., help="Device kind, e.g. camera, ip_camera, smoke_detector."),
    count: int = typer.Option(1, min=1, max=999_999, help="How many IDs to allocate."),
    industry: int = typer.Option(0, min=0, max=99, help="Industry code 00-99."),
    network: int = typer.Option(0, min=0, max=9, help="Network identifier 0-9."),
    edition: int = typer.Option(DEFAULT_EDITION, help="Edition to issue under (2016 or 2022)."),
    use_db: bool = typer.Option(
        False, "--db", help="Check the region against the regions table and skip IDs in use."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Allocate new IDs for a region and kind without colliding with existing ones."""
    _check_edition(edition)
    try:
        spec = kind_spec(kind)
    except ValueError as exc:
        _fail(str(exc))
        return
    known: set[str] | None = None
    existing: list[str] = []
    if use_db:
        try:
            known, existing = _db_divisions_and_ids(region.strip())
        except Exception as exc:  # a person gets the reason, not a traceback
            _fail(f"--db: cannot read regions/devices ({exc.__class__.__name__}: {exc})", 1)
    try:
        ids = allocate_ids(
            region,
            spec.type_code,
            count,
            existing,
            industry=industry,
            network=network,
            edition=edition,
            known=known or None,
        )
    except ValueError as exc:
        _fail(str(exc))
        return
    if as_json:
        print(
            json.dumps(
                [{"id": d.code, "edition": d.edition, "kind": spec.name} for d in ids],
                ensure_ascii=False,
            )
        )
        return
    table = Table("id", "kind", "type", "edition", title=f"{len(ids)} new ID(s) in {region}")
    for d in ids:
        table.add_row(d.code, spec.name, f"{d.type_code:03d} {d.type_meaning}", str(d.edition))
    console.print(table)


def optics_cmd(
    focal: str = typer.Option(..., help="Focal length in mm, or a varifocal range like 2.8-12."),
    sensor: str = typer.Option("1/2.8", help='Sensor format, e.g. 1/2.8 or 1/1.8".'),
    resolution: str = typer.Option("1920x1080", help="WIDTHxHEIGHT in pixels, or 4MP, 4K..."),
    sensor_width: float | None = typer.Option(
        None, "--sensor-width", help="Active sensor width in mm (overrides the format's table)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """Field of view, pixel density and DORI ranges of a lens on a sensor."""
    try:
        cam = optics(focal, sensor, resolution, sensor_width_mm=sensor_width)
    except OpticsError as exc:
        _fail(str(exc))
        return
    reports = cam.reports()
    if as_json:
        print(
            json.dumps(
                {
                    "camera": cam.model_dump(),
                    "dori_ppm": DORI_PPM,
                    "at_focal": [r.model_dump() for r in reports],
                }
            )
        )
        return
    title = (
        f'{cam.sensor}" sensor ({cam.sensor_width_mm:g} mm wide), {cam.width_px}x{cam.height_px}'
    )
    table = Table("focal mm", "HFOV °", "VFOV °", *(f"{k} m" for k in DORI_PPM), title=title)
    for r in reports:
        table.add_row(
            f"{r.focal_mm:g}",
            f"{r.hfov_deg:.1f}",
            f"{r.vfov_deg:.1f}",
            *(f"{r.dori_m[k]:.1f}" for k in DORI_PPM),
        )
    console.print(table)
    console.print(
        "DORI densities (EN 62676-4): "
        + ", ".join(f"{k} {v:g} px/m" for k, v in DORI_PPM.items())
        + "; pinhole model, lens distortion not included."
    )


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `gridwatch` app (one line in gridwatch/cli.py)."""
    app.add_typer(id_app, name="id")
    app.command("optics")(optics_cmd)
