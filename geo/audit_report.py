"""Audit reports for people and machines: JSON, CSV, and a self-contained HTML page with map and charts."""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

from sqlalchemy import Connection, text

from geo.audit import AuditReport, code_range

LEVEL_NAMES = {1: "province", 2: "city", 3: "county", 4: "township", 5: "village"}


def to_json(report: AuditReport, suggestions: Any = None) -> str:
    doc = json.loads(report.model_dump_json())
    if suggestions is not None:
        doc["suggestions"] = json.loads(suggestions.model_dump_json())
    return json.dumps(doc, ensure_ascii=False, indent=1)


CSV_COLUMNS = [
    "section",
    "rule",
    "code",
    "name",
    "level",
    "unit_kind",
    "status",
    "value",
    "target",
    "basis",
    "reason",
    "units",
    "passed",
    "failed",
    "pct_passed",
    "rate",
    "lon",
    "lat",
    "area_m2",
]


def report_rows(report: AuditReport, suggestions: Any = None) -> dict[str, list[dict]]:
    """The report as flat rows by section: every rule (pass, fail or not assessed with the
    missing input), every unit under every rule, the roll-up, located findings, suggestions."""
    rules = [
        {
            "section": "rule",
            "rule": r.rule,
            "code": report.region_code,
            "name": r.title,
            "status": r.status,
            "value": r.rate if r.rate is not None else r.passed,
            "target": r.target,
            "reason": r.missing,
            "units": r.units,
            "passed": r.passed,
            "failed": r.failed,
            "rate": r.rate,
        }
        for r in report.statuses
    ]
    units = [
        {
            "section": "unit",
            "rule": u.rule,
            "code": u.unit_id,
            "name": u.name,
            "level": u.unit_kind,
            "unit_kind": u.unit_kind,
            "status": u.status,
            "value": u.value,
            "target": u.target,
            "basis": u.basis,
            "reason": u.reason,
        }
        for u in report.units
    ]
    units += [
        {
            "section": "unit",
            "rule": "",
            "code": r["code"],
            "name": r["name"],
            "level": LEVEL_NAMES.get(r["level"], r["level"]),
            "unit_kind": "retired",
            "status": "retired",
            "reason": f"retired {r['retired_at']:%Y-%m-%d}: code abolished in a later list; not audited",
        }
        for r in report.retired
    ]
    rollup = [
        {
            "section": "rollup",
            **r.model_dump(),
            "status": "pass" if r.ok else "fail",
            "level": LEVEL_NAMES.get(r.level, r.level),
        }
        for r in report.rollup
    ]
    findings = [
        {
            "section": "finding",
            "rule": f.rule,
            "code": f.unit_id,
            "unit_kind": f.kind,
            "status": "fail",
            "reason": f.detail,
            "lon": f.lon,
            "lat": f.lat,
            "area_m2": round(f.area_m2, 1),
        }
        for f in report.findings
    ]
    sugg = []
    if suggestions is not None:
        sugg = [
            {
                "section": "suggestion",
                "rule": ",".join(s.closes_rules),
                "code": s.region_code,
                "name": s.label,
                "value": s.rank,
                "reason": s.why,
                "lon": s.lon,
                "lat": s.lat,
            }
            for s in suggestions.candidates
        ]
    return {
        "rules": rules,
        "units": units,
        "rollup": rollup,
        "findings": findings,
        "suggestions": sugg,
    }


def to_csv(report: AuditReport, suggestions: Any = None) -> str:
    """One long table for a spreadsheet: a `section` column (rule, unit, rollup, finding,
    suggestion); unit rows are one per unit and rule with status, value, target and basis."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for rows in report_rows(report, suggestions).values():
        w.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
    return out.getvalue()


def to_xlsx(report: AuditReport, suggestions: Any = None) -> bytes:
    """The same rows as the CSV, one worksheet per section, with a header row and filters."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for section, rows in report_rows(report, suggestions).items():
        ws = wb.create_sheet(section)
        cols = [
            c for c in CSV_COLUMNS if c != "section" and any(r.get(c) is not None for r in rows)
        ]
        ws.append(cols or ["(none)"])
        for r in rows:
            ws.append([_cell(r.get(c)) for c in cols])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, int | float | str):
        # a leading = + - @ would make a formula in a spreadsheet: keep text as text
        if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):
            return "'" + v
        return v
    return str(v)


# --- HTML --------------------------------------------------------------------------------------


def map_shapes(
    conn: Connection, region_code: str, max_shapes: int = 2500
) -> tuple[int, dict[str, dict]]:
    """(level, {code: GeoJSON}) of the deepest level under the region with at most max_shapes units."""
    _, low, high = code_range(region_code)
    counts = dict(
        conn.execute(
            text(
                "SELECT level, count(*) FROM regions WHERE code BETWEEN :l AND :h AND geom IS NOT NULL GROUP BY level"
            ),
            {"l": low, "h": high},
        ).all()
    )
    levels = sorted(lv for lv, n in counts.items() if n <= max_shapes)
    if not levels:
        return 0, {}
    level = levels[-1]
    rows = conn.execute(
        text(
            "SELECT code, ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, 0.0005), 5) AS g FROM regions "
            "WHERE code BETWEEN :l AND :h AND level = :lv AND geom IS NOT NULL"
        ),
        {"l": low, "h": high, "lv": level},
    ).all()
    return level, {r.code: json.loads(r.g) for r in rows}


def _rings(geom: dict) -> list[list[list[float]]]:
    if geom["type"] == "Polygon":
        return geom["coordinates"]
    if geom["type"] == "MultiPolygon":
        return [ring for poly in geom["coordinates"] for ring in poly]
    return []


def _svg_map(
    report: AuditReport,
    level: int,
    shapes: dict[str, dict],
    suggestions: Any,
    w: int = 760,
    h: int = 560,
) -> str:
    if not shapes:
        return "<p>No boundaries imported for this region: no map.</p>"
    xs = [pt[0] for g in shapes.values() for ring in _rings(g) for pt in ring]
    ys = [pt[1] for g in shapes.values() for ring in _rings(g) for pt in ring]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (w - 20) / max(x1 - x0, 1e-9)
    sy = (h - 20) / max(y1 - y0, 1e-9)
    s = min(sx, sy)

    def px(x: float, y: float) -> str:
        return f"{10 + (x - x0) * s:.1f},{10 + (y1 - y) * s:.1f}"

    # colour each unit by the share of rules it passes (roll-up rows of that unit)
    per_unit: dict[str, list[bool]] = {}
    for r in report.rollup:
        if r.level == level:
            per_unit.setdefault(r.code, []).append(r.ok)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" class="map">'
    ]
    for code, g in shapes.items():
        oks = per_unit.get(code, [])
        share = sum(oks) / len(oks) if oks else None
        fill = "#ddd" if share is None else f"hsl({int(120 * share)},70%,60%)"
        d = " ".join("M" + " L".join(px(x, y) for x, y in ring) + " Z" for ring in _rings(g))
        title = f"{code}: {sum(oks)}/{len(oks)} rules met" if oks else code
        parts.append(
            f'<path d="{d}" fill="{fill}" stroke="#555" stroke-width="0.4"><title>{html.escape(title)}</title></path>'
        )
    for f in report.findings[:500]:
        parts.append(
            f'<circle cx="{px(f.lon, f.lat).split(",")[0]}" cy="{px(f.lon, f.lat).split(",")[1]}" r="3" fill="#a0f" >'
            f"<title>{html.escape(f.kind + ': ' + f.detail + f' ({f.area_m2:,.0f} m²)')}</title></circle>"
        )
    if suggestions is not None:
        for c in suggestions.candidates[:300]:
            cx, cy = px(c.lon, c.lat).split(",")
            parts.append(
                f'<rect x="{float(cx) - 3:.1f}" y="{float(cy) - 3:.1f}" width="6" height="6" fill="#06c">'
                f"<title>#{c.rank} {html.escape(c.label)}: {html.escape(c.why)}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _bars(report: AuditReport) -> str:
    rows = report.summary()
    if not rows:
        return "<p>No units to chart.</p>"
    bar_h, w = 22, 520
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 260}" height="{bar_h * len(rows) + 10}" class="chart">'
    ]
    for i, r in enumerate(rows):
        value = (r.rate if r.rate is not None else (r.pct_passed or 0) / 100) or 0.0
        y = 5 + i * bar_h
        colour = "#3a3" if r.ok else "#c33"
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{html.escape(r.rule)}</text>')
        parts.append(
            f'<rect x="220" y="{y + 3}" width="{w * min(value, 1):.1f}" height="{bar_h - 8}" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{225 + w * min(value, 1):.1f}" y="{y + 15}" font-size="12">{100 * value:.1f}%</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}.ok{color:#272}.bad{color:#b22;font-weight:600}.map{border:1px solid #aaa;background:#f8fbff}
.small{color:#666;font-size:12px}.na{color:#a60}
@media print{.detail{display:none}body{margin:0}.map{max-height:120mm}h2{page-break-after:avoid}
table{page-break-inside:auto}tr{page-break-inside:avoid}}
"""


def to_html(
    report: AuditReport,
    level: int = 0,
    shapes: dict[str, dict] | None = None,
    suggestions: Any = None,
    max_rows: int = 2000,
) -> str:
    """A self-contained page (inline CSS and SVG, no scripts or remote assets)."""
    e = html.escape
    rules = {r.id: r for r in report.rules}
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>"
        # opened from disk the report has no HTTP headers: the same no-script policy as a meta tag
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>Audit {e(report.region_name)}</title>"
        f"<style>{_CSS}</style></head><body>"
    ]
    out.append(f"<h1>Coverage audit: {e(report.region_name)} ({e(report.region_code)})</h1>")
    out.append(
        f"<p class='small'>as of {report.as_of:%Y-%m-%d %H:%M} UTC · rule pack “{e(report.rule_pack)}” "
        f"sha256 {e((report.rule_pack_sha256 or '')[:12])} · run {report.run_id or '-'}</p>"
    )
    for note in report.notes:
        out.append(f"<p class='small'>note: {e(note)}</p>")
    out.append(
        "<p class='small'>Printing gives the summary (rules, children, the first failing units and "
        "suggestions); the full tables are in this page and in the CSV/XLSX output.</p>"
        "<h2>Rules</h2><table><tr><th>rule</th><th>requirement</th><th>source</th><th>units</th><th>passed</th>"
        "<th>result</th></tr>"
    )
    for st in report.statuses:
        info = rules.get(st.rule)
        if st.status == "not assessed":
            cls, result = "na", f"not assessed: {st.missing}"
        else:
            cls = "ok" if st.status == "pass" else "bad"
            result = (
                f"{100 * st.rate:.1f}% (target {100 * (st.target or 0):.0f}%)"
                if st.rate is not None
                else f"{st.passed} of {st.units} units"
            )
            result = f"{'met' if st.status == 'pass' else 'not met'}: {result}"
        out.append(
            f"<tr><td>{e(st.rule)}</td><td>{e(st.title)}</td><td class='small'>{e(info.source if info else '')}</td>"
            f"<td>{st.units}</td><td>{st.passed}</td><td class='{cls}'>{e(result)}</td></tr>"
        )
    out.append("</table>")
    children = sorted(
        {(r.code, r.name) for r in report.rollup if r.level == report.region_level + 1}
    )
    if children:
        out.append(
            f"<h2>By {e(LEVEL_NAMES.get(report.region_level + 1, 'unit'))}</h2><table><tr><th>code</th>"
            "<th>name</th><th>rules met</th><th>not met</th></tr>"
        )
        for code, name in children[:60]:
            rows = [r for r in report.rollup if r.code == code]
            bad = [r.rule for r in rows if not r.ok]
            out.append(
                f"<tr><td>{e(code)}</td><td>{e(name)}</td><td>{len(rows) - len(bad)}/{len(rows)}</td>"
                f"<td>{e(', '.join(bad))}</td></tr>"
            )
        out.append("</table>")
    if report.retired:
        out.append(
            f"<p>{len(report.retired)} retired unit(s), not audited: "
            + e(", ".join(f"{r['code']} {r['name']}" for r in report.retired[:20]))
            + ("…" if len(report.retired) > 20 else "")
            + "</p>"
        )
    out.append("<div class='detail'><h2>Roll-up chart</h2>" + _bars(report) + "</div>")
    out.append(f"<h2>Compliance map ({e(LEVEL_NAMES.get(level, 'units'))} level)</h2>")
    out.append(
        "<p class='small'>colour: share of rules met (red none, green all); purple dots: grid gaps/overlaps; "
        "blue squares: suggested new monitoring points</p>"
    )
    out.append(_svg_map(report, level, shapes or {}, suggestions))
    out.append(
        "<div class='detail'><h2>Roll-up by region</h2><table><tr><th>code</th><th>name</th><th>level</th><th>rule</th><th>units</th>"
        "<th>passed</th><th>failed</th><th>% passed</th><th>rate</th></tr>"
    )
    for r in report.rollup[:max_rows]:
        out.append(
            f"<tr><td>{e(r.code)}</td><td>{e(r.name)}</td><td>{e(LEVEL_NAMES.get(r.level, str(r.level)))}</td><td>{e(r.rule)}</td>"
            f"<td>{r.units}</td><td>{r.passed}</td><td>{r.failed}</td><td>{r.pct_passed}</td>"
            f"<td class='{'ok' if r.ok else 'bad'}'>{'' if r.rate is None else f'{100 * r.rate:.1f}%'}</td></tr>"
        )
    out.append("</table></div>")
    if suggestions is not None:
        out.append("<h2>Where the next monitoring points should go</h2>")
        out.append(f"<p>{e(suggestions.method)}</p>")
        out.append(
            "<table><tr><th>rank</th><th>position (WGS 84)</th><th>village</th><th>why</th><th>closes</th></tr>"
        )
        for i, c in enumerate(suggestions.candidates[:max_rows]):
            out.append(
                f"<tr{' class=detail' if i >= 15 else ''}><td>{c.rank}</td><td>{c.lon:.6f}, {c.lat:.6f}</td><td>{e(c.region_code or '')}</td><td>{e(c.why)}</td>"
                f"<td>{e(', '.join(c.closes_rules))}</td></tr>"
            )
        out.append("</table><table><tr><th>rule</th><th>now</th><th>if built</th></tr>")
        for rule, (now, then) in suggestions.projected.items():
            out.append(f"<tr><td>{e(rule)}</td><td>{now}</td><td>{then}</td></tr>")
        out.append("</table>")
    out.append(
        f"<h2>Failing units ({len(report.failures)})</h2><table><tr><th>rule</th><th>unit</th><th>name</th>"
        "<th>reason</th><th>where</th></tr>"
    )
    for i, f in enumerate(report.failures[:max_rows]):
        where = f"{f.lon:.5f}, {f.lat:.5f}" if f.lon is not None else ""
        out.append(
            f"<tr{' class=detail' if i >= 25 else ''}><td>{e(f.rule)}</td><td>{e(f.unit_id)}</td><td>{e(f.name or '')}</td><td>{e(f.reason or '')}</td><td>{where}</td></tr>"
        )
    if len(report.failures) > max_rows:
        out.append(
            f"<tr><td colspan='5'>… {len(report.failures) - max_rows} more in the JSON/CSV output</td></tr>"
        )
    out.append(
        f"</table><div class='detail'><h2>Grid gaps and overlaps ({len(report.findings)})</h2><table><tr><th>kind</th><th>parent</th>"
        "<th>area m²</th><th>where</th><th>detail</th></tr>"
    )
    for f in report.findings[:max_rows]:
        out.append(
            f"<tr><td>{e(f.kind)}</td><td>{e(f.unit_id)}</td><td>{f.area_m2:,.0f}</td><td>{f.lon:.5f}, {f.lat:.5f}</td><td>{e(f.detail)}</td></tr>"
        )
    out.append("</table></div></body></html>")
    return "".join(out)
