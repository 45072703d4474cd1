"""`gridwatch ingest` (the worker) and `gridwatch deadletters` (inspect rejected messages)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from gridwatch.console import console, err

deadletters_app = typer.Typer(
    help="Messages the ingest worker could not accept.", no_args_is_help=True
)


def ingest_cmd(
    client_id: str = typer.Option(None, help="MQTT client id (stable across restarts)."),
    share_group: str = typer.Option(None, help="Shared-subscription group name."),
    no_share: bool = typer.Option(False, "--no-share", help="Plain subscriptions (one worker)."),
    stats_file: Path = typer.Option(None, help="Write counters and latencies here on exit."),
    max_seconds: float = typer.Option(None, help="Stop after this many seconds."),
) -> None:
    """Run the MQTT ingest worker: validate, batch, persist, ack after commit."""
    from ingest.config import get_ingest_settings
    from ingest.worker import run_worker

    update: dict = {}
    if client_id:
        update["client_id"] = client_id
    if share_group:
        update["share_group"] = share_group
    if no_share:
        update["share_group"] = ""
    cfg = get_ingest_settings().model_copy(update=update)
    from gridwatch.secrets import WeakSecretError, require_strong_secrets
    from gridwatch.settings import get_settings

    settings = get_settings()
    try:  # the worker exposes nothing; what matters is whether its broker is off this host
        require_strong_secrets(settings, settings.mqtt_endpoint()[0], "gridwatch ingest")
    except WeakSecretError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    try:
        run_worker(stats_file=stats_file, max_seconds=max_seconds, cfg=cfg)
    except KeyboardInterrupt:
        pass


@deadletters_app.command("list")
def deadletters_list(
    limit: int = typer.Option(20, min=1, max=10000, help="How many, newest first."),
    topic: str = typer.Option(None, help="Only topics containing this text."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The newest dead letters: time, topic, size and the reason they were refused."""
    from gridwatch.db import get_engine
    from ingest.deadletters import list_dead_letters

    try:
        with get_engine().connect() as conn:
            rows = list_dead_letters(conn, limit=limit, topic_contains=topic)
    except Exception as exc:  # noqa: BLE001 - a person gets the reason, not a traceback
        err.print(f"[bold red]error:[/] cannot read dead letters: {exc}")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps([r.to_json() for r in rows]))
        return
    table = Table("id", "received", "topic", "bytes", "reason")
    for r in rows:
        table.add_row(
            str(r.id), r.received_at.isoformat(timespec="seconds"), r.topic, str(r.size), r.reason
        )
    console.print(table)


@deadletters_app.command("summary")
def deadletters_summary(as_json: bool = typer.Option(False, "--json")) -> None:
    """Dead letters counted by reason category (bad topic, invalid alarm, too large, ...)."""
    from gridwatch.db import get_engine
    from ingest.deadletters import summary

    try:
        with get_engine().connect() as conn:
            rows = summary(conn)
    except Exception as exc:  # noqa: BLE001
        err.print(f"[bold red]error:[/] cannot read dead letters: {exc}")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps([{"category": c, "count": n} for c, n in rows]))
        return
    table = Table("category", "count")
    for c, n in rows:
        table.add_row(c, str(n))
    console.print(table)


devices_app = typer.Typer(help="Registered devices' broker credentials.", no_args_is_help=True)


@devices_app.command("credentials")
def device_credentials(
    device_id: str = typer.Argument(..., help="The device's 20-digit GB/T 28181 id."),
    reset: bool = typer.Option(
        False, "--reset", help="Draw a new password (the old one stops working) and show it once."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The device's MQTT user name and broker URL; with --reset, a new password, shown once."""
    from gridwatch.settings import get_settings
    from ingest.broker_acl import CredentialsError, broker_url, reset_device_credentials

    settings = get_settings()
    if not reset:
        out = {"username": device_id, "broker_url": broker_url(settings)}
        note = "the password is shown only when it is set: run again with --reset"
        if as_json:
            print(json.dumps({**out, "password": None, "note": note}))
        else:
            console.print(f"username    {device_id}\nbroker URL  {out['broker_url']}\n{note}")
        return
    try:
        out = reset_device_credentials(device_id, actor="cli", settings=settings)
    except CredentialsError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001 - a person gets the reason, not a traceback
        err.print(f"[bold red]error:[/] cannot reset credentials: {exc}")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(out))
    else:
        console.print(
            f"username    {out['username']}\npassword    {out['password']}\n"
            f"broker URL  {out['broker_url']}\n"
            "This password is shown once; the old one no longer works."
        )
