"""`gridwatch serve` (the API and maps under uvicorn) and `gridwatch users ...` (accounts)."""

from __future__ import annotations

import getpass
import json
import os
from typing import NoReturn

import typer
from rich.table import Table

from gridwatch.console import console, err, fail

users_app = typer.Typer(
    help="User accounts: operators, installers, auditors, admins.", no_args_is_help=True
)


def _fail(message: str, code: int = 1) -> NoReturn:
    fail(message, code)


def serve_cmd(
    host: str = typer.Option(None, help="Listen address (default GRIDWATCH_API_HOST)"),
    port: int = typer.Option(None, help="Port (default GRIDWATCH_API_PORT)"),
    workers: int = typer.Option(1, min=1, max=64, help="uvicorn worker processes"),
    log_level: str = typer.Option(None, help="uvicorn log level (default GRIDWATCH_LOG_LEVEL)"),
) -> None:
    """Serve the REST API, the live stream and the maps (/map, /install, /audit) with uvicorn."""
    import uvicorn

    from gridwatch.settings import get_settings
    from maps.assets import check_assets

    settings = get_settings()
    missing = check_assets()
    if missing:
        err.print(
            "[yellow]warning:[/] map assets missing (run ./gw setup, which runs npm ci in maps/assets): "
            + ", ".join(missing)
        )
    from gridwatch.tls import tls_files

    host = host or settings.api_host
    port = port or settings.api_port
    from gridwatch.secrets import WeakSecretError, require_strong_secrets

    try:
        require_strong_secrets(settings, host, "gridwatch serve")
    except WeakSecretError as exc:
        _fail(str(exc))
    try:
        tls = tls_files(settings)
    except (OSError, ValueError) as exc:
        _fail(f"cannot set up HTTPS: {exc}")
        return
    scheme = "https" if tls else "http"
    console.print(
        f"gridwatch API on {scheme}://{host}:{port}  (map: /map, installer: /install, audit: /audit, docs: /docs)"
    )
    if settings.public_url:
        console.print(f"phones and browsers reach it at {settings.public_url}")
    if tls and tls.ca:
        console.print(f"HTTPS with the local CA {tls.ca}: install it on phones from /install/ca")
    try:
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=(log_level or settings.log_level).lower(),
            timeout_graceful_shutdown=3,
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
        )
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port")


def _engine():
    from gridwatch.db import get_engine

    return get_engine()


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="User name (2-64 letters, digits, . _ -)"),
    role: str = typer.Option(..., "--role", help="operator, installer, auditor or admin"),
    region: list[str] = typer.Option(
        [], "--region", help="12-digit region code (repeat for several)"
    ),
    full_name: str = typer.Option(None, "--full-name"),
    password: str = typer.Option(
        None, "--password", help="Password (default: $GRIDWATCH_NEW_PASSWORD, else asked)"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a user with a role and the regions they work in (installers need at least one)."""
    from api.users import UserError, create_user

    password = password or os.environ.get("GRIDWATCH_NEW_PASSWORD")
    if not password:
        password = getpass.getpass(f"password for {name}: ")
    codes = [
        r.strip().ljust(12, "0")
        if r.strip().isdigit() and len(r.strip()) in (2, 4, 6, 9)
        else r.strip()
        for r in region
    ]
    try:
        with _engine().begin() as conn:
            user = create_user(
                conn, name, password, role, codes, full_name, actor=f"cli:{getpass.getuser()}"
            )
    except UserError as exc:
        _fail(str(exc), 2)
    except Exception as exc:
        _fail(f"could not reach the database: {exc.__class__.__name__}: {exc}")
    if as_json:
        print(user.model_dump_json())
    else:
        console.print(
            f"created {user.role} [bold]{user.username}[/] regions: {', '.join(user.regions) or 'all'}"
        )


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List users with their roles and regions."""
    from api.users import list_users

    try:
        with _engine().connect() as conn:
            users = list_users(conn)
    except Exception as exc:
        _fail(f"could not reach the database: {exc.__class__.__name__}: {exc}")
    if as_json:
        print(json.dumps([u.model_dump() for u in users]))
        return
    table = Table("user", "role", "regions", "active")
    for u in users:
        table.add_row(
            u.username, u.role, ", ".join(u.regions) or "(all)", "yes" if u.active else "no"
        )
    console.print(table)


@users_app.command("passwd")
def users_passwd(
    name: str,
    password: str = typer.Option(None, "--password", help="New password (default: asked)"),
) -> None:
    """Set a user's password."""
    from api.users import UserError, set_password

    password = (
        password
        or os.environ.get("GRIDWATCH_NEW_PASSWORD")
        or getpass.getpass(f"new password for {name}: ")
    )
    try:
        with _engine().begin() as conn:
            set_password(conn, name, password, actor=f"cli:{getpass.getuser()}")
    except UserError as exc:
        _fail(str(exc), 2)
    console.print(f"password of {name} changed; the tokens issued before are revoked")


def _change(name: str, change, done: str, as_json: bool) -> None:
    from api.users import UserError, get_user

    try:
        with _engine().begin() as conn:
            change(conn)
            user = get_user(conn, username=name)
    except UserError as exc:
        _fail(str(exc), 2)
    except Exception as exc:
        _fail(f"could not reach the database: {exc.__class__.__name__}: {exc}")
    if as_json:
        print(json.dumps({"username": name, "done": done, "user": user and user.model_dump()}))
    else:
        console.print(f"{name}: {done}")


@users_app.command("disable")
def users_disable(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Disable a user: refused at sign-in, and every token issued to them stops working."""
    from api.users import set_active

    actor = f"cli:{getpass.getuser()}"
    _change(
        name, lambda c: set_active(c, name, False, actor=actor), "disabled, tokens revoked", as_json
    )


@users_app.command("enable")
def users_enable(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Enable a disabled user again (old tokens stay revoked: they sign in anew)."""
    from api.users import set_active

    actor = f"cli:{getpass.getuser()}"
    _change(name, lambda c: set_active(c, name, True, actor=actor), "enabled", as_json)


@users_app.command("revoke")
def users_revoke(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Sign a user out everywhere: every token issued so far stops working."""
    from api.users import revoke_tokens

    actor = f"cli:{getpass.getuser()}"
    _change(name, lambda c: revoke_tokens(c, name, actor=actor), "tokens revoked", as_json)


@users_app.command("delete")
def users_delete(
    name: str,
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Delete a user (their tokens stop working; the audit log keeps their name)."""
    from api.users import delete_user

    if not yes and not typer.confirm(f"delete user {name}?"):
        _fail("not deleted", 1)
    actor = f"cli:{getpass.getuser()}"
    _change(name, lambda c: delete_user(c, name, actor=actor), "deleted", as_json)
