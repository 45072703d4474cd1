"""`gridwatch import ...` and `gridwatch audit`: the geo package's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import typer
from rich.table import Table

from geo.importlog import ImportReport
from gridwatch.console import console, err, fail

import_app = typer.Typer(
    help="Import division lists, boundaries, natural villages and roads (exit 1 if rows were rejected).",
    no_args_is_help=True,
)

CRS_HELP = (
    "CRS of the coordinates: wgs84 (default), gcj02, bd09 or EPSG:n (e.g. EPSG:4490, EPSG:32650)."
)


def _fail(message: str, code: int = 2) -> NoReturn:
    fail(message, code)


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


@import_app.command("devices")
def import_devices_cmd(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Camera inventory: CSV, XLSX or GeoJSON."
    ),
    crs: str = typer.Option(
        None, "--crs", help="wgs84, gcj02 or bd09 (default: WGS 84, checked against boundaries)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and report; store nothing."),
    actor: str = typer.Option("import", "--actor"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Devices from an inventory (id, name, kind, lon/lat, village code, heading, height, focal
    length, resolution, stream URL; Chinese headers too); each row inserted, updated, unchanged
    or refused with the reason. Running it twice changes nothing."""
    from geo.import_devices import import_devices

    _show(_run(import_devices, file, crs=crs, dry_run=dry_run, actor=actor), as_json)


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
    from geo.import_villages import import_villages

    _show(_run(import_villages, file, crs=crs, layer=layer, actor=actor), as_json)


@import_app.command("roads")
def import_roads_cmd(
    file: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="OpenStreetMap .osm.pbf / .osm, or road lines as GeoJSON/GeoPackage.",
    ),
    crs: str = typer.Option(None, "--crs", help=CRS_HELP),
    layer: str = typer.Option(None, "--layer"),
    network: str = typer.Option(
        "drive",
        "--network",
        help="Which OSM ways are streets, as osmnx filters them: drive, drive_service or all.",
    ),
    actor: str = typer.Option("import", "--actor"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Roads and railways; derives intersections where three or more street ends meet."""
    from geo.import_roads import import_roads

    _show(_run(import_roads, file, crs=crs, layer=layer, actor=actor, network=network), as_json)


def register(app: typer.Typer) -> None:
    """Add the geo commands to the main `gridwatch` app."""
    app.add_typer(import_app, name="import")
    app.command("audit")(audit_cmd)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _print_audit(report, suggestions, limit: int) -> None:
    from geo.audit_report import LEVEL_NAMES

    rules = {r.id: r for r in report.rules}
    title = (
        f"audit {report.region_name} ({report.region_code}) as of {report.as_of:%Y-%m-%d %H:%M} UTC"
    )
    from rich.table import Column

    table = Table(Column("rule", no_wrap=True), "units", "passed", "failed", "result", title=title)
    for r in report.statuses:
        info = rules[r.rule]
        if r.status == "not assessed":
            table.add_row(r.rule, "0", "", "", f"[yellow]not assessed[/] {r.missing}")
            continue
        if r.rate is not None:
            result = f"{_pct(r.rate)} (target {_pct(info.target)})"
        else:
            result = f"{r.passed} of {r.units} units"
        verdict = "[green]met[/]" if r.status == "pass" else "[red]not met[/]"
        table.add_row(r.rule, str(r.units), str(r.passed), str(r.failed), f"{verdict} {result}")
    console.print(table)
    levels = [r.level for r in report.rollup if r.level > report.region_level]
    if levels:
        child_level = min(levels)
        by_child: dict[tuple[str, str], list] = {}
        for r in report.rollup:
            if r.level == child_level:
                by_child.setdefault((r.code, r.name), []).append(r)
        grid = Table(
            "code",
            "name",
            "rules met",
            "not met",
            title=f"by {LEVEL_NAMES.get(child_level, child_level)}",
        )
        for (code, name), rows in sorted(by_child.items())[:limit]:
            bad = [r.rule for r in rows if not r.ok]
            grid.add_row(code, name, f"{len(rows) - len(bad)}/{len(rows)}", ", ".join(bad))
        console.print(grid)
    if report.failures:
        n = min(limit, len(report.failures))
        fails = Table(
            "rule",
            "unit",
            "name",
            "reason",
            "where",
            title=f"failing units: {len(report.failures)} (first {n})",
        )
        for f in report.failures[:limit]:
            where = f"{f.lon:.5f},{f.lat:.5f}" if f.lon is not None else ""
            reason = f.reason or ""
            if f.basis:
                reason += f" [dim]({f.basis})[/]"
            fails.add_row(f.rule, f.unit_id, f.name or "", reason, where)
        console.print(fails)
    if report.findings:
        finds = Table(
            "kind",
            "parent",
            "area m²",
            "where",
            "detail",
            title=f"grid gaps/overlaps: {len(report.findings)}",
        )
        for f in report.findings[:limit]:
            finds.add_row(
                f.kind, f.unit_id, f"{f.area_m2:,.0f}", f"{f.lon:.5f},{f.lat:.5f}", f.detail
            )
        console.print(finds)
    if suggestions is not None and suggestions.candidates:
        title = f"suggested new monitoring points: {len(suggestions.candidates)} (greedy maximum coverage)"
        sug = Table("rank", "lon", "lat", "kind", "why", title=title)
        for c in suggestions.candidates[:limit]:
            sug.add_row(str(c.rank), f"{c.lon:.6f}", f"{c.lat:.6f}", c.kind, c.why)
        console.print(sug)
        for rule, (now, then) in suggestions.projected.items():
            console.print(f"  {rule}: {now} now -> {then} if all are built")
    if report.retired:
        sample = ", ".join(f"{r['code']} {r['name']}" for r in report.retired[:10])
        console.print(f"[dim]retired, not audited:[/] {sample}", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note[/] {note}", highlight=False)


def audit_cmd(
    region: str = typer.Option(
        ..., "--region", help="12-digit division code (or its 2/4/6/9-digit prefix)."
    ),
    rules: Path = typer.Option(
        None, "--rules", help="Rule pack (TOML); default: the built-in pack (DESIGN §6)."
    ),
    at: str = typer.Option(None, "--at", help="Audit time, ISO 8601 (default now)."),
    fmt: str = typer.Option("table", "--format", help="table, json, csv, xlsx or html."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Write the report here (html defaults to audit-CODE.html)."
    ),
    suggest: bool = typer.Option(
        True, "--suggest/--no-suggest", help="Rank where new monitoring points should go."
    ),
    save: bool = typer.Option(
        True, "--save/--no-save", help="Keep the run in audit_runs/audit_results."
    ),
    limit: int = typer.Option(30, "--limit", help="Rows per table in the table format."),
    actor: str = typer.Option("audit", "--actor"),
) -> None:
    """Audit a region against the rule pack: roll-up at every level, failing units, gap suggestions."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from geo.audit import AuditError, run_audit
    from geo.audit_report import map_shapes, to_csv, to_html, to_json, to_xlsx
    from geo.gaps import suggest as suggest_points
    from geo.rulepack import RulePackError, load_rule_pack

    if fmt not in ("table", "json", "csv", "xlsx", "html"):
        _fail(f"--format: {fmt!r} is not one of table, json, csv, xlsx, html")
    code = region.strip()
    if not code.isdigit() or len(code) not in (2, 4, 6, 9, 12):
        _fail(f"--region: {region!r} is not a division code (2, 4, 6, 9 or 12 digits)")
    code = code.ljust(12, "0")
    try:
        pack = load_rule_pack(rules)
    except RulePackError as exc:
        _fail(str(exc))
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=fmt != "table",
    )
    try:
        with progress, _engine().begin() as conn:
            task = progress.add_task("audit", total=len(pack.rules) + 2)

            def tick(name: str, done: int, total: int) -> None:
                progress.update(task, description=f"audit: {name}", completed=done, total=total)

            report = run_audit(conn, code, pack, at, actor=actor, save=save, progress=tick)
            suggestions = suggest_points(conn, report, pack) if suggest else None
            level, shapes = map_shapes(conn, report.region_code) if fmt == "html" else (0, {})
    except (AuditError, RulePackError) as exc:
        _fail(str(exc))
    if fmt == "table":
        _print_audit(report, suggestions, limit)
        return
    if fmt == "xlsx":
        output = output or Path(f"audit-{report.region_code}.xlsx")
        output.write_bytes(to_xlsx(report, suggestions))
        err.print(f"wrote {output}")
        return
    body = {
        "json": lambda: to_json(report, suggestions),
        "csv": lambda: to_csv(report, suggestions),
        "html": lambda: to_html(report, level, shapes, suggestions),
    }[fmt]()
    if fmt == "html" and output is None:
        output = Path(f"audit-{report.region_code}.html")
    if output is None:
        print(body)
    else:
        output.write_text(body, "utf-8")
        err.print(f"wrote {output}")
