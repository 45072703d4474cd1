"""`gridwatch import ...`, `gridwatch generate region` and `gridwatch audit`: the geo package's commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from geo.importlog import ImportReport

console = Console()
err = Console(stderr=True)

import_app = typer.Typer(
    help="Import division lists, boundaries, natural villages and roads (exit 1 if rows were rejected).",
    no_args_is_help=True,
)
generate_app = typer.Typer(
    help="Generate synthetic regions for demos and benchmarks.", no_args_is_help=True
)

CRS_HELP = (
    "CRS of the coordinates: wgs84 (default), gcj02, bd09 or EPSG:n (e.g. EPSG:4490, EPSG:32650)."
)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _engine():
    from gridwatch.db import get_engine

    return get_engine()


def _show(report: ImportReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.summary(), ensure_ascii=False))
    else:
        table = Table(
            "file",
            "status",
            "rows",
            "inserted",
            "updated",
            "unchanged",
            "rejected",
            "repaired",
            title=f"import {report.kind}",
        )
        table.add_row(
            report.path,
            report.status,
            str(report.total),
            str(report.inserted),
            str(report.updated),
            str(report.unchanged),
            str(len(report.rejected)),
            str(len(report.repaired)),
        )
        console.print(table)
        for k, v in report.derived.items():
            console.print(f"  {k.replace('_', ' ')}: {v}")
        if report.rejected:
            rej = Table("line", "id", "reason", title="rejected")
            for r in report.rejected:
                rej.add_row(str(r.line or ""), r.id or "", r.reason)
            console.print(rej)
        for note in report.repaired:
            console.print(f"[yellow]repaired[/] {note}", highlight=False)
        for note in report.findings:
            console.print(f"[cyan]finding[/] {note}", highlight=False)
    if report.rejected:
        raise typer.Exit(1)


def _run(fn, *args, **kwargs) -> ImportReport:
    from geo.features import FeatureFileError

    try:
        with _engine().begin() as conn:
            return fn(conn, *args, **kwargs)
    except (FeatureFileError, ValueError, OSError) as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")  # pragma: no cover


@import_app.command("divisions")
def import_divisions_cmd(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Division list (UTF-8 or GBK/GB18030)."
    ),
    actor: str = typer.Option("import", "--actor", help="Who is importing (for the audit log)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Statistical division codes: code, urban-rural code, name (level and parent from the code)."""
    from geo.divisions import import_divisions

    _show(_run(import_divisions, file, actor=actor), as_json)


@import_app.command("boundaries")
def import_boundaries_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="GeoJSON or GeoPackage."),
    kind: str = typer.Option(..., "--kind", help="region, grid or keysite."),
    crs: str = typer.Option(None, "--crs", help=CRS_HELP),
    layer: str = typer.Option(None, "--layer", help="GeoPackage layer (default: the first)."),
    actor: str = typer.Option("import", "--actor"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Region, grid or key-site boundaries; re-importing the same file changes nothing."""
    from geo.importers import import_boundaries

    if kind not in ("region", "grid", "keysite"):
        _fail(f"--kind: {kind!r} is not one of region, grid, keysite")
    _show(_run(import_boundaries, file, kind, crs=crs, layer=layer, actor=actor), as_json)


@import_app.command("villages")
def import_villages_cmd(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="GeoJSON, GeoPackage or CSV (lon, lat)."
    ),
    crs: str = typer.Option(None, "--crs", help=CRS_HELP),
    layer: str = typer.Option(None, "--layer"),
    actor: str = typer.Option("import", "--actor"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Natural villages (points/polygons) and main intersections (kind=intersection)."""
    from geo.importers import import_villages

    _show(_run(import_villages, file, crs=crs, layer=layer, actor=actor), as_json)


@import_app.command("roads")
def import_roads_cmd(
    file: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="Road lines, e.g. an OSM extract as GeoJSON/GeoPackage.",
    ),
    crs: str = typer.Option(None, "--crs", help=CRS_HELP),
    layer: str = typer.Option(None, "--layer"),
    snap_m: float = typer.Option(
        5.0, "--snap-m", help="Road crossings closer than this are one intersection."
    ),
    actor: str = typer.Option("import", "--actor"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Roads and railways; derives intersections where two or more roads meet."""
    from geo.importers import import_roads

    _show(_run(import_roads, file, crs=crs, layer=layer, actor=actor, snap_m=snap_m), as_json)


def register(app: typer.Typer) -> None:
    """Add the geo commands to the main `gridwatch` app."""
    app.add_typer(import_app, name="import")
    app.add_typer(generate_app, name="generate")


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
    from geo.synth import SCALES, generate_region

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
