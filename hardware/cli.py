"""`gridwatch id ...`, `gridwatch optics` and `gridwatch simulate`: the hardware package's commands."""

from __future__ import annotations

import json
from typing import NoReturn

import typer
from rich.table import Table

from gridwatch.console import console, err, fail
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


def _parse_centre(text: str) -> tuple[float, float]:
    try:
        lon, lat = (float(v) for v in text.split(","))
    except ValueError:
        _fail(f"--centre: {text!r} is not LON,LAT (e.g. 115.9,28.68)")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        _fail(f"--centre: {text!r} is outside lon -180..180, lat -90..90")
    return lon, lat


def simulate_cmd(
    devices: int = typer.Option(
        0, "--devices", min=0, max=1_000_000, help="Synthesise this many devices around --centre."
    ),
    from_db: bool = typer.Option(
        False,
        "--from-db",
        help="Simulate the devices (of --region) that the region generator or the demo "
        "registered; devices registered by people are never simulated.",
    ),
    region: str | None = typer.Option(None, help="Division code: which devices / ID prefix."),
    centre: str = typer.Option("115.9,28.68", help="LON,LAT of synthesised devices (WGS 84)."),
    radius_m: float = typer.Option(15_000, min=10, max=500_000, help="Spread of synthesised ones."),
    seed: int = typer.Option(28181, help="Seed of every random choice (same seed, same run)."),
    speed: float = typer.Option(1.0, min=0.001, max=100_000, help="Simulated seconds per second."),
    duration: float = typer.Option(
        0, min=0, help="Stop after this many simulated seconds (0: run until Ctrl-C)."
    ),
    connections: int = typer.Option(
        0,
        min=0,
        help="0: each device on its own connection with its own credentials and Last Will. "
        "N: N pooled hub-credential connections publishing for all devices (benchmarks).",
    ),
    alarm_rate_scale: float = typer.Option(1.0, min=0, help="Multiply every alarm rate."),
    snapshot_s: float = typer.Option(
        600, min=1, help="Simulated seconds between camera snapshots."
    ),
    snapshot_fraction: float = typer.Option(
        1.0, min=0, max=1, help="Share of cameras sending snapshots."
    ),
    fault_fraction: float = typer.Option(
        0.1, min=0, max=1, help="Share of cameras with a picture fault."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Run the virtual fleet over MQTT: heartbeats, outages, alarms, positions, snapshots."""
    import signal

    from gridwatch.settings import get_settings
    from hardware.fleet import Fleet
    from hardware.fleet_model import FleetOptions, synthesize_fleet
    from hardware.fleet_transport import FleetCapacityError

    if from_db == (devices > 0):
        _fail("give either --devices N (synthesised) or --from-db (registered devices)")
    settings = get_settings()
    say = (
        (lambda m: err.print(f"[cyan]fleet[/] {m}", highlight=False))
        if as_json
        else (lambda m: console.print(f"[cyan]fleet[/] {m}", highlight=False))
    )
    try:
        if from_db:
            from gridwatch.db import get_engine
            from hardware.fleet_db import load_fleet

            fleet_devices = load_fleet(get_engine(settings), region, seed)
            if not fleet_devices:
                _fail(f"no registered devices with a position under region {region or '(all)'}", 1)
        else:
            fleet_devices = synthesize_fleet(
                devices, _parse_centre(centre), radius_m, (region or "360121")[:8], seed
            )
        options = FleetOptions(
            seed=seed,
            speed=speed,
            duration_s=duration or None,
            alarm_rate_scale=alarm_rate_scale,
            snapshot_s=snapshot_s,
            snapshot_fraction=snapshot_fraction,
            fault_fraction=fault_fraction,
        )
    except ValueError as exc:  # bad region, bad options: a sentence, not a traceback
        _fail(str(exc))
        return
    except typer.Exit:
        raise
    except Exception as exc:
        _fail(f"--from-db: cannot read devices ({exc.__class__.__name__}: {exc})", 1)
        return
    from gridwatch.secrets import device_key

    host, port = settings.mqtt_endpoint()
    fleet = Fleet(
        fleet_devices,
        options,
        host,
        port,
        secret=device_key(settings),
        hub=settings.hub_credentials("simulator"),
        connections=connections or None,
        say=say,
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _s, _f: fleet.stop())
    try:
        summary = fleet.run(progress_s=0 if as_json else 10.0)
    except FleetCapacityError as exc:
        _fail(str(exc), 1)
        return
    if as_json:
        print(summary.model_dump_json())
        return
    table = Table("measure", "value", title=f"fleet run ({summary.mode}, seed {summary.seed})")
    for name, value in summary.model_dump().items():
        table.add_row(name, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)
    if summary.connect_failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `gridwatch` app (one line in gridwatch/cli.py)."""
    app.add_typer(id_app, name="id")
    app.command("optics")(optics_cmd)
    app.command("simulate")(simulate_cmd)
