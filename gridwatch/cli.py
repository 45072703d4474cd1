"""The `gridwatch` command line (typer): services, doctor, database, and each package's commands."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from gridwatch.console import console, fail
from gridwatch.services import ServiceError, services_down, services_status, services_up
from gridwatch.settings import get_settings

app = typer.Typer(
    help="gridwatch: monitoring hub for public-security video and IoT networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
services_app = typer.Typer(
    help="Manage the project-local PostGIS and Mosquitto.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema and migrations.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(db_app, name="db")


def _print_status(as_json: bool) -> bool:
    statuses = services_status()
    if as_json:
        print(json.dumps([s.__dict__ for s in statuses]))
    else:
        table = Table("service", "running", "managed here", "endpoint", "detail")
        for s in statuses:
            table.add_row(
                s.name,
                "[green]yes[/]" if s.running else "[red]no[/]",
                "yes" if s.managed else "external",
                s.endpoint,
                s.detail,
            )
        console.print(table)
    return all(s.running for s in statuses)


@services_app.command("up")
def services_up_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Start the local PostGIS and Mosquitto (only those not given by URL settings)."""
    try:
        from ingest.broker_acl import DynsecAccounts

        settings = get_settings()
        services_up(settings, DynsecAccounts(settings))
    except ServiceError as exc:
        fail(str(exc))
    if not _print_status(as_json):
        raise typer.Exit(1)


@services_app.command("down")
def services_down_cmd() -> None:
    """Stop the local services."""
    try:
        services_down()
    except ServiceError as exc:
        fail(str(exc))
    console.print("local services stopped")


@services_app.command("status")
def services_status_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Show whether the database and broker are reachable (exit 1 when one is not)."""
    if not _print_status(as_json):
        raise typer.Exit(1)


@db_app.command("migrate")
def db_migrate_cmd() -> None:
    """Create the database if needed and apply every migration."""
    from gridwatch.db import current_revisions, migrate

    try:
        migrate()
    except Exception as exc:  # a person gets the reason, not a traceback
        fail(f"migration failed: {exc}")
    console.print(f"database at {', '.join(sorted(current_revisions()))}")


@app.command("doctor")
def doctor_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Check this machine for everything gridwatch needs; say what is missing and how to fix it.

    Exits 1 when something the hub needs is missing; what only the tests need is reported.
    """
    from gridwatch.doctor import run_checks

    checks = run_checks(get_settings())
    if as_json:
        print(json.dumps([c.__dict__ for c in checks]))
    else:
        table = Table("check", "ok", "detail / fix")
        for c in checks:
            mark = "[green]ok[/]" if c.ok else "[red]missing[/]" if c.required else "[yellow]no[/]"
            table.add_row(c.name, mark, c.detail)
        console.print(table)
    if not all(c.ok for c in checks if c.required):
        raise typer.Exit(1)


@app.command("demo")
def demo_cmd(
    speed: float = typer.Option(1.0, help="Fleet time factor (2 = heartbeats twice as often)."),
    seed: int = typer.Option(28181, help="Seed of the demo county and fleet."),
    run_for: float = typer.Option(0, help="Stop after this many seconds (0: run until Ctrl-C)."),
    no_fleet: bool = typer.Option(False, "--no-fleet", help="Do not start the simulated fleet."),
) -> None:
    """Start everything: local services, the demo county, a simulated fleet, ingest, API, map."""
    from gridwatch.demo import DemoOptions, run_demo
    from gridwatch.services import ServiceError

    options = DemoOptions(speed=speed, seed=seed, run_for=run_for or None, fleet=not no_fleet)
    try:
        code = run_demo(options, say=lambda m: console.print(f"[bold cyan]demo[/] {m}"))
    except ServiceError as exc:
        fail(str(exc))
    raise typer.Exit(code)


# ---- sub-commands: each package registers its typer app or commands here, one line each ----
__import__("hardware.cli").cli.register(app)  # id decode/new, optics, simulate
app.command("ingest")(__import__("ingest.cli").cli.ingest_cmd)  # MQTT ingest worker
app.add_typer(__import__("ingest.cli").cli.deadletters_app, name="deadletters")
app.add_typer(__import__("ingest.cli").cli.devices_app, name="devices")  # broker credentials
app.command("serve")(__import__("api.cli").cli.serve_cmd)  # API, live stream and maps (uvicorn)
app.add_typer(__import__("api.cli").cli.users_app, name="users")  # user accounts and roles
__import__("geo.cli").cli.register(app)  # import, generate region, audit
__import__("vision.cli").cli.register(app)  # vision worker/approve/check, inspect rounds
__import__("gb28181.cli").cli.register(app)  # GB/T 28181 gateway, per-device SIP settings
__import__("alarmrx.cli").cli.register(app)  # SIA DC-09 alarm receiver, panel accounts
__import__("federation.cli").cli.register(app)  # county hubs joining a city hub
__import__("simulators.cli").cli.register(app)  # simulate (virtual fleet), generate region


def main() -> None:
    """Entry point used by `python -m gridwatch`."""
    sys.exit(app())
