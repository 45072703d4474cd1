"""`gridwatch alarm-receiver`: run the SIA DC-09 receiver; map panel accounts to devices."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from gb28181.cli import serve_on

app = typer.Typer(
    help="SIA DC-09 alarm receiver (TCP and UDP) for intrusion and fire panels.",
    invoke_without_command=True,
)
err = Console(stderr=True)


def build(settings=None):
    """A Receiver from the settings (GRIDWATCH_SIA_*), its store and MQTT publisher."""
    from alarmrx.receiver import Receiver, ReceiverConfig
    from alarmrx.store import SiaStore
    from gb28181.publisher import GatewayPublisher
    from gridwatch.db import get_engine
    from gridwatch.settings import get_settings

    settings = settings or get_settings()
    cfg = ReceiverConfig(
        host=settings.sia_host, port=settings.sia_port, region=settings.sip_domain[:6]
    )
    publisher = GatewayPublisher(settings, f"sia-{cfg.port}", shards=4)
    # its own database role (gridwatch/dbroles.py): accounts, restorals, pending panels
    return Receiver(cfg, SiaStore(get_engine(settings, role="alarmrx")), publisher)


serve_on(
    app,
    "receiver",
    build,
    lambda s: (s.sia_host, s.sia_port),
    "Run the receiver on GRIDWATCH_SIA_HOST:GRIDWATCH_SIA_PORT (TCP and UDP).",
)


@app.command("account")
def account_cmd(
    account: str = typer.Argument(..., help="The panel's account number (3-16 hex digits)."),
    device_id: str = typer.Argument(..., help="20-digit id of the registered panel device."),
    key: str | None = typer.Option(None, help="AES key as set in the panel (16/24/32 chars)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Map a panel account to a device (and its AES key, when the panel encrypts)."""
    from alarmrx.store import SiaStore
    from gridwatch.db import get_engine

    try:
        SiaStore(get_engine()).set_account(account, device_id, key)
    except (ValueError, LookupError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    out = {"account": account.upper(), "device_id": device_id, "encrypted": key is not None}
    print(json.dumps(out) if as_json else f"account {account.upper()} -> {device_id}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="alarm-receiver")
