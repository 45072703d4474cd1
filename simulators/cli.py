"""`gridwatch simulate`, `generate region` and `gb28181 demo-devices`: the simulators' commands."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import NoReturn

import typer
from rich.table import Table

from gridwatch.console import console, err, fail

generate_app = typer.Typer(
    help="Generate synthetic regions for demos and benchmarks.", no_args_is_help=True
)


def _fail(message: str, code: int = 2) -> NoReturn:
    fail(message, code)


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
    from simulators.fleet import Fleet
    from simulators.fleet_model import FleetOptions, synthesize_fleet
    from simulators.fleet_transport import FleetCapacityError

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
            from simulators.fleet_db import load_fleet

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


@generate_app.command("region")
def generate_region_cmd(
    seed: int = typer.Option(1, "--seed", help="Same seed, same region."),
    scale: str = typer.Option(
        "county",
        "--scale",
        help="county (demo, ~4,000 devices), province (bench, ~1,000,000) or small (tests).",
    ),
    database_url: str = typer.Option(
        None, "--database-url", help="Load into this database instead of the configured one."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Generate a synthetic region near Nanchang (idempotent: present already -> nothing changes)."""
    from simulators.region import SCALES, generate_region

    if scale not in SCALES:
        _fail(f"--scale: {scale!r} is not one of {', '.join(SCALES)}")
    from gridwatch.db import migrate
    from gridwatch.settings import get_settings

    url = database_url or get_settings().db_url()
    try:
        migrate(url)
        with console.status(f"generating {scale} (seed {seed})..."):
            summary = generate_region(url, seed=seed, scale=scale)
    except Exception as exc:  # a person gets the reason, not a traceback
        _fail(f"generation failed: {exc}")
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    table = Table(
        "what",
        "count",
        title=f"synthetic {scale}, seed {seed}"
        + ("" if summary.get("created") else " (already present)"),
    )
    for k, v in summary.items():
        if k not in ("seed", "scale", "created"):
            table.add_row(k.replace("_", " "), str(v))
    console.print(table)


def demo_devices_cmd(
    speed: float = typer.Option(1.0, help="Time factor (2 = keepalives twice as often)."),
) -> None:
    """Run the demo's simulated GB/T 28181 devices and SIA panel against the local gateway."""
    from gridwatch.settings import get_settings
    from simulators.gb28181_demo import run_demo_devices

    s = get_settings()
    logging.basicConfig(
        level=s.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host = "127.0.0.1" if s.sip_host in ("0.0.0.0", "") else s.sip_host
    sia = "127.0.0.1" if s.sia_host in ("0.0.0.0", "") else s.sia_host
    try:
        asyncio.run(
            run_demo_devices(
                s.sip_domain[:6], (host, s.sip_port), s.sip_domain, (sia, s.sia_port), speed
            )
        )
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add the simulators' commands to the `gridwatch` app (one line in gridwatch/cli.py):
    `simulate`, `generate region`, and `gb28181 demo-devices` on the gateway's command group."""
    from gb28181.cli import app as gb28181_app

    app.command("simulate")(simulate_cmd)
    app.add_typer(generate_app, name="generate")
    gb28181_app.command("demo-devices")(demo_devices_cmd)
