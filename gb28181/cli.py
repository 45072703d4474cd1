"""`gridwatch gb28181`: run the GB/T 28181 gateway; per-device SIP settings for installers."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(
    help="GB/T 28181 access gateway (SIP over UDP and TCP) for cameras, NVRs and platforms.",
    invoke_without_command=True,
)
err = Console(stderr=True)


def build(settings=None, **overrides):
    """A Gateway from the settings (GRIDWATCH_SIP_*), its store and MQTT publisher."""
    from gb28181.gateway import Gateway, GatewayConfig
    from gb28181.publisher import GatewayPublisher
    from gb28181.store import GatewayStore
    from gridwatch.db import get_engine
    from gridwatch.secrets import generated_key
    from gridwatch.settings import get_settings

    settings = settings or get_settings()
    cfg = GatewayConfig(
        host=settings.sip_host,
        port=settings.sip_port,
        sip_id=settings.sip_id,
        domain=settings.sip_domain,
        password=settings.sip_password,
        secret=generated_key("sip_nonce_key", settings),
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    # its own database role (gridwatch/dbroles.py): registrations, catalogs, device info
    store = GatewayStore(get_engine(settings, role="gb28181"), gateway=cfg.name)
    return Gateway(cfg, store, GatewayPublisher(settings, cfg.name, cfg.broker_shards))


async def run_service(service, what: str, max_seconds: float | None = None) -> None:
    """Start a gateway service (start/stop/stats) and serve until SIGTERM/SIGINT (or max_seconds);
    the SIA receiver runs through this too."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        await asyncio.wait_for(stop.wait(), max_seconds) if max_seconds else await stop.wait()
    except TimeoutError:
        pass
    finally:
        await service.stop()
        logging.getLogger(__name__).info("%s stopped: %s", what, dict(service.stats))


def serve_service(service, what: str, settings, listen: tuple[str, int], run_for: float) -> None:
    """`gridwatch gb28181` and `gridwatch alarm-receiver`: logging, then run_service until stopped;
    a port that cannot be bound or a broker that is down is a sentence and exit 1."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(run_service(service, what, run_for or None))
    except OSError as exc:
        err.print(f"[bold red]error:[/] cannot listen on {listen[0]}:{listen[1]}: {exc}")
        raise typer.Exit(1) from None
    except ConnectionError as exc:
        err.print(f"[bold red]error:[/] {exc}; start it with `gridwatch services up`")
        raise typer.Exit(1) from None


def serve_on(
    app: typer.Typer,
    what: str,
    make: Callable[[Any], Any],
    listen: Callable[[Any], tuple[str, int]],
    doc: str,
) -> None:
    """Make `app` run alone (no subcommand) serve `make(settings)` on `listen(settings)` until
    stopped or --run-for seconds (serve_service); `doc` is its help. The gateway and the SIA
    receiver are started so."""

    def command(
        ctx: typer.Context,
        run_for: float = typer.Option(0, help="Stop after this many seconds (0: until Ctrl-C)."),
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        from gridwatch.settings import get_settings

        settings = get_settings()
        serve_service(make(settings), what, settings, listen(settings), run_for)

    command.__doc__ = doc
    app.callback()(command)


serve_on(
    app,
    "gateway",
    build,
    lambda s: (s.sip_host, s.sip_port),
    "Run the gateway on GRIDWATCH_SIP_HOST:GRIDWATCH_SIP_PORT (UDP and TCP).",
)


@app.command("device")
def device_cmd(
    device_id: str = typer.Argument(..., help="20-digit id of a registered device."),
    password: str | None = typer.Option(None, help="The device's own SIP password."),
    crs: str | None = typer.Option(None, help="CRS of its Longitude/Latitude: wgs84 or gcj02."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Set a device's own SIP password and/or the CRS it reports positions in."""
    from gb28181.store import GatewayStore
    from gridwatch.db import get_engine
    from gridwatch.settings import get_settings

    if crs is not None and crs not in ("wgs84", "gcj02", "bd09"):
        err.print(f"[bold red]error:[/] crs {crs!r}: use wgs84, gcj02 or bd09")
        raise typer.Exit(2)
    if password is None and crs is None:
        err.print("[bold red]error:[/] give --password and/or --crs")
        raise typer.Exit(2)
    settings = get_settings()
    try:
        GatewayStore(get_engine(settings)).set_device(
            device_id, password=password, realm=settings.sip_domain, crs=crs
        )
    except LookupError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    out = {"device_id": device_id, "password_set": password is not None, "crs": crs}
    print(json.dumps(out) if as_json else f"{device_id}: updated")


@app.command("cascade")
def cascade_cmd(
    upper: str | None = typer.Option(
        None, help="Upper platform, sip:<20-digit id>@<host>[:<port>] (GRIDWATCH_CASCADE_UPPER)."
    ),
    password: str | None = typer.Option(None, help="Password it gave this hub."),
    region: str | None = typer.Option(None, help="Scope: devices of this region code and below."),
    transport: str | None = typer.Option(None, help="udp or tcp."),
    port: int | None = typer.Option(None, help="Local SIP port of the link (0: any)."),
    keepalive_s: float | None = typer.Option(None, help="Keepalive interval, seconds."),
    expires: int | None = typer.Option(None, help="Registration validity, seconds."),
    run_for: float = typer.Option(0, help="Stop after this many seconds (0: until Ctrl-C)."),
) -> None:
    """Register this hub with an upper GB/T 28181 platform as a lower platform: keepalives,
    its Catalog answered with the devices in scope, new alarms forwarded (docs/gb28181.md)."""
    from gb28181.cascade import Cascade, CascadeStore, config_from_settings
    from gridwatch.db import get_engine
    from gridwatch.settings import get_settings

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = config_from_settings(
            settings,
            upper=upper,
            password=password,
            region=region,
            transport=transport,
            local_port=port,
            keepalive_s=keepalive_s,
            expires=expires,
        )
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if not cfg.password:
        err.print("[bold red]error:[/] no password: set GRIDWATCH_CASCADE_PASSWORD or --password")
        raise typer.Exit(2)
    # read-only: the catalog and the event bus are all the link needs of the database
    store = CascadeStore(get_engine(settings, role="auditor"), cfg.local_id, cfg.region)
    try:
        asyncio.run(run_service(Cascade(cfg, store), "cascade", run_for or None))
    except OSError as exc:
        err.print(f"[bold red]error:[/] cannot open the link: {exc}")
        raise typer.Exit(1) from None


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="gb28181")
