"""`gridwatch federation join|status|pause|resume`: a county joins its city, the city watches them."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from federation.replication import FederationError, JoinPlan, guess_scope, join, set_enabled, status
from gridwatch.console import console, fail

federation_app = typer.Typer(
    help="Three-level networking: county hubs publish to a city hub (docs/operations.md).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the federation commands to the main `gridwatch` app."""
    app.add_typer(federation_app, name="federation")


def _local_url() -> str:
    """This hub's database as its superuser: publications, replication logins and
    subscriptions are PostgreSQL 15's superuser's work (an external URL is used as given)."""
    from gridwatch.settings import get_settings

    return get_settings().db_url(role="admin")


@federation_app.command("join")
def join_cmd(
    upstream: str = typer.Option(
        ...,
        "--upstream",
        help="The city hub's database URL as its superuser, who alone may create subscriptions "
        "in PostgreSQL 15 (postgresql://gridwatch:password@host:port/gridwatch); used for "
        "this command only, never stored.",
    ),
    hub_id: str = typer.Option(
        ..., "--hub-id", help="This hub's name upstream (e.g. nanchang_xian), the rows' origin."
    ),
    scope: str = typer.Option(
        "",
        help="Division code prefix of this hub's regions (e.g. 360121); default: its one county.",
    ),
    advertise_host: str = typer.Option(
        "127.0.0.1", help="Address the city reaches this hub's PostgreSQL at."
    ),
    advertise_port: int = typer.Option(0, help="Port of it; default: this hub's database port."),
    upstream_id: str = typer.Option(
        "city", help="The upstream hub's name, if it has none yet (its own rows' origin)."
    ),
    upstream_mqtt: str = typer.Option(
        "",
        "--upstream-mqtt",
        help="The city's broker with its admin account (mqtt://gridwatch-admin:password@host:port): "
        "this hub's live events go up and alarm commands come down over a bridge; used for this "
        "command only, never stored.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Publish this hub's devices, presence, alarms with trails, health and regions to a city hub
    and make the city subscribe, with a replication login of this hub's own (GRIDWATCH_HOME/secrets.json)."""
    from sqlalchemy.engine import make_url

    from gridwatch.secrets import load_secrets
    from gridwatch.settings import get_settings

    settings = get_settings()
    local = _local_url()
    try:
        scope = scope or guess_scope(local) or ""
        if not scope:
            fail("this hub does not hold exactly one county: say which with --scope 360121")
        plan = JoinPlan(
            hub_id=hub_id,
            scope=scope,
            upstream_url=upstream,
            local_url=local,
            advertise_host=advertise_host,
            advertise_port=advertise_port or make_url(local).port or 5432,
            repl_password=load_secrets(settings.home)["fed_repl_password"],
            upstream_id=upstream_id,
        )
        result = join(plan)
        bridge = None
        if upstream_mqtt:
            from federation.bridge import set_up_bridge
            from gridwatch.settings import Settings

            bridge = set_up_bridge(settings, Settings(mqtt_url=upstream_mqtt), hub_id)
    except FederationError as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a bad URL: the reason, not a traceback
        fail(f"join failed: {exc}")
    if as_json:
        print(json.dumps({**result.__dict__, "bridge": str(bridge) if bridge else None}))
        return
    console.print(
        f"{result.hub_id} joined {result.upstream_id} as hub {result.hub_no} "
        f"(subscription {result.subscription}; this hub's ids now {result.id_first}..{result.id_last})"
    )
    for table, n in result.renumbered.items():
        if n:
            console.print(f"  {table}: {n} rows moved into this hub's id range")
    if bridge:
        console.print(
            f"live events bridged to the city's broker ({bridge}); run `gridwatch federation relay` at both hubs"
        )


@federation_app.command("status")
def status_cmd(
    as_json: bool = typer.Option(False, "--json"),
    no_probe: bool = typer.Option(
        False, "--no-probe", help="Do not connect to the counties to measure their lag."
    ),
) -> None:
    """This hub's name, the upstream it publishes to, and each county it subscribes to: state,
    last received, lag (exit 1 when a county is in error or missing)."""
    try:
        got = status(_local_url(), probe=not no_probe)
    except FederationError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(got.as_dict()))
    else:
        console.print(
            f"hub [bold]{got.hub_id}[/]"
            + (f" (number {got.hub_no}, scope {got.scope})" if got.hub_no is not None else "")
            + (f", publishing to {got.upstream}" if got.upstream else "")
        )
        if got.publishing:
            table = Table("slot (upstream reading us)", "active", "WAL kept", "behind (bytes)")
            for s in got.publishing:
                table.add_row(
                    s.slot,
                    "yes" if s.active else "[red]no[/]",
                    s.wal_status or "",
                    str(s.lag_bytes),
                )
            console.print(table)
        if got.members:
            table = Table(
                "county",
                "no",
                "scope",
                "state",
                "tables",
                "last received",
                "lag (bytes)",
                "errors",
                "detail",
            )
            for m in got.members:
                colour = {"streaming": "green", "syncing": "yellow", "paused": "yellow"}.get(
                    m.state, "red"
                )
                age = (
                    f"{m.last_received_age_s:.1f} s ago"
                    if m.last_received_age_s is not None
                    else "never"
                )
                table.add_row(
                    m.hub_id,
                    str(m.hub_no),
                    m.scope,
                    f"[{colour}]{m.state}[/]",
                    f"{m.tables_ready}/{m.tables}",
                    age,
                    "" if m.lag_bytes is None else str(m.lag_bytes),
                    f"{m.apply_errors}/{m.sync_errors}",
                    m.detail,
                )
            console.print(table)
        elif not got.publishing:
            console.print("no federation: `gridwatch federation join --upstream ...` at a county")
    if any(m.state in ("error", "missing") for m in got.members):
        raise typer.Exit(1)


def _switch(hub_id: str, enabled: bool) -> None:
    try:
        set_enabled(_local_url(), hub_id, enabled)
    except FederationError as exc:
        fail(str(exc))
    console.print(f"{hub_id}: {'resumed' if enabled else 'paused'}")


@federation_app.command("pause")
def pause_cmd(hub_id: str = typer.Argument(..., help="The county hub's id.")) -> None:
    """At the city: stop applying a county's changes (the county keeps them until resume)."""
    _switch(hub_id, False)


@federation_app.command("resume")
def resume_cmd(hub_id: str = typer.Argument(..., help="The county hub's id.")) -> None:
    """At the city: apply a county's changes again, from where it stopped (also after an error)."""
    _switch(hub_id, True)


@federation_app.command("relay")
def relay_cmd() -> None:
    """Run this hub's federation relay until Ctrl-C: at a city, the counties' live events into its
    event stream; at a county, the alarm commands its city sends (docs/operations.md)."""
    import signal

    from federation.relay import Relay
    from gridwatch.settings import get_settings

    relay = Relay(get_settings())
    signal.signal(signal.SIGTERM, lambda *a: relay.stop())
    try:
        relay.run()
    except KeyboardInterrupt:
        relay.stop()


@federation_app.command("alarm")
def alarm_cmd(
    hub_id: str = typer.Argument(..., help="The county the alarm belongs to."),
    alarm_id: int = typer.Argument(...),
    state: str = typer.Argument(..., help="acknowledged, dispatched, resolved or false_alarm"),
    by: str = typer.Option(..., "--by", help="Who does it (shown at the county as <city>:<by>)."),
    note: str = typer.Option("", "--note"),
) -> None:
    """At the city: change a county's alarm; applied at the county if its state allows it there
    (the county's state decides; the outcome comes back by replication)."""
    from pydantic import ValidationError

    from federation.relay import AlarmCommand, send_command
    from gridwatch.settings import get_settings

    try:
        cmd = AlarmCommand(alarm_id=alarm_id, state=state, by=by, note=note or None)  # type: ignore[arg-type]
        send_command(get_settings(), hub_id, cmd)
    except (ValidationError, ValueError, OSError, TimeoutError) as exc:
        fail(f"the command was not sent: {exc}")
    console.print(f"sent to {hub_id}: alarm {alarm_id} -> {state}")
