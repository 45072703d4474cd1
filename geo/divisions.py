"""Statistical division lists (统计用区划代码): parse any published layout, derive level and parent, load regions."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, text

from geo.importlog import ImportReport, file_sha256, record_import
from hardware.region_code import RegionCode

URBAN_RURAL_CODES = {111, 112, 121, 122, 123, 210, 220}
LEVEL_NAMES = {1: "province", 2: "city", 3: "county", 4: "township", 5: "village"}
_LEVEL_WORDS = {
    "province": 1,
    "省": 1,
    "1": 1,
    "city": 2,
    "prefecture": 2,
    "市": 2,
    "地级": 2,
    "2": 2,
    "county": 3,
    "district": 3,
    "县": 3,
    "区县": 3,
    "3": 3,
    "town": 4,
    "township": 4,
    "street": 4,
    "乡镇": 4,
    "街道": 4,
    "4": 4,
    "village": 5,
    "community": 5,
    "村": 5,
    "社区": 5,
    "村委会": 5,
    "居委会": 5,
    "5": 5,
}
_HEADER_ALIASES = {
    "code": ("code", "统计用区划代码", "区划代码", "代码", "division_code", "adcode"),
    "urban_rural_code": ("urban_rural_code", "城乡分类代码", "城乡分类", "urc"),
    "name": ("name", "名称", "单位名称"),
    "level": ("level", "级别", "层级"),
    "parent_code": ("parent_code", "parent", "上级代码", "上级区划代码"),
}


def level_of(code: str) -> int:
    """Level from a 12-digit code: the deepest non-zero part (pp cc nn ttt vvv)."""
    return RegionCode(code).depth


def parent_candidates(code: str) -> list[str]:
    """The parent a code belongs under: the code with its deepest non-zero part zeroed.

    A township of a city without counties (e.g. Dongguan 441900003000) thus sits under the
    city 441900000000; a village whose township is missing has no parent (it is rejected).
    """
    level = level_of(code)
    if level == 1:
        return []
    cut = {5: 9, 4: 6, 3: 4, 2: 2}[level]
    return [code[:cut].ljust(12, "0")]


@dataclass
class DivisionRow:
    """One parsed row of a division list."""

    line: int
    code: str
    name: str
    level: int
    urban_rural_code: int | None
    parent_code: str | None = None
    given_parent: str | None = None
    notes: list[str] = field(default_factory=list)


def decode_text(data: bytes) -> tuple[str, str]:
    """Text of a file in UTF-8 (with or without BOM) or GBK/GB18030; returns (text, encoding)."""
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise ValueError("the file is neither UTF-8 nor GBK/GB18030 text")


def _split_rows(content: str) -> list[tuple[int, list[str]]]:
    lines = [(i + 1, ln) for i, ln in enumerate(content.splitlines()) if ln.strip()]
    if not lines:
        return []
    sample = "\n".join(ln for _, ln in lines[:20])
    delimiter = None
    for cand in (",", "\t", "|", ";"):
        if cand in sample:
            delimiter = cand
            break
    out = []
    for number, ln in lines:
        if delimiter is None:
            cells = re.split(r"\s+", ln.strip())
        else:
            cells = next(csv.reader(io.StringIO(ln), delimiter=delimiter))
        out.append((number, [c.strip().strip("\ufeff") for c in cells]))
    return out


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    lowered = [h.strip().lower() for h in header]
    for key, aliases in _HEADER_ALIASES.items():
        for i, h in enumerate(lowered):
            if h in aliases:
                found[key] = i
                break
    return found


def _cell(cells: list[str], cols: dict[str, int], key: str) -> str:
    i = cols.get(key)
    return cells[i] if i is not None and i < len(cells) else ""


def parse_divisions(data: bytes) -> tuple[list[DivisionRow], list[dict], str]:
    """Parse a division list; returns (rows, rejected [{line, id, reason}], encoding).

    Layouts: the published three columns (code, urban-rural code, name) with or without a
    header, the sample's five columns (code, urban_rural_code, name, level, parent_code), tab-,
    comma- or space-separated. 12-digit codes; 6-digit county codes are padded. Level and parent
    are derived from the code; a level or parent column that disagrees is reported.
    """
    content, encoding = decode_text(data)
    rows = _split_rows(content)
    rejected: list[dict] = []
    out: list[DivisionRow] = []
    cols: dict[str, int] | None = None
    if rows and not re.fullmatch(r"\d{6,12}", rows[0][1][0] if rows[0][1] else ""):
        cols = _columns(rows[0][1])
        if "code" not in cols or "name" not in cols:
            rejected.append(
                {
                    "line": rows[0][0],
                    "id": None,
                    "reason": "header has no code and name columns (code, name, 统计用区划代码, 名称)",
                }
            )
            return [], rejected, encoding
        rows = rows[1:]
    seen: dict[str, int] = {}
    for number, cells in rows:
        if cols is not None:
            code, urc, name = (_cell(cells, cols, k) for k in ("code", "urban_rural_code", "name"))
            level_text, parent = _cell(cells, cols, "level"), _cell(cells, cols, "parent_code")
        else:
            code = cells[0] if cells else ""
            if len(cells) >= 3 and re.fullmatch(r"\d{3}|", cells[1]):
                urc, name = cells[1], cells[2]
            else:
                urc, name = "", (cells[1] if len(cells) > 1 else "")
            level_text = cells[3] if len(cells) > 3 else ""
            parent = cells[4] if len(cells) > 4 else ""
        if re.fullmatch(r"\d{6}", code):
            code = code + "000000"
        if not re.fullmatch(r"\d{12}", code):
            rejected.append(
                {
                    "line": number,
                    "id": code or None,
                    "reason": f"code {code!r} is not a 12-digit statistical division code",
                }
            )
            continue
        if not name:
            rejected.append({"line": number, "id": code, "reason": "name is empty"})
            continue
        if code in seen:
            rejected.append(
                {
                    "line": number,
                    "id": code,
                    "reason": f"code repeats line {seen[code]}; the first one is kept",
                }
            )
            continue
        level = level_of(code)
        row = DivisionRow(number, code, name, level, None)
        if urc:
            if urc.isdigit() and int(urc) in URBAN_RURAL_CODES:
                row.urban_rural_code = int(urc)
            else:
                row.notes.append(
                    f"urban-rural code {urc!r} is not one of {sorted(URBAN_RURAL_CODES)}; left empty"
                )
        if level_text:
            given = _LEVEL_WORDS.get(level_text.strip().lower())
            if given is not None and given != level:
                row.notes.append(
                    f"level column says {level_text!r} but the code is a {LEVEL_NAMES[level]}; the code wins"
                )
        if parent and re.fullmatch(r"\d{12}", parent):
            row.given_parent = parent
        seen[code] = number
        out.append(row)
    return out, rejected, encoding


def _resolve_parents(
    conn: Connection, rows: list[DivisionRow], report: ImportReport
) -> list[DivisionRow]:
    in_file = {r.code for r in rows}
    candidates = {c for r in rows for c in parent_candidates(r.code)}
    in_db = {
        r[0]
        for r in conn.execute(
            text("SELECT code FROM regions WHERE code = ANY(:c)"), {"c": sorted(candidates)}
        )
    }
    known = in_file | in_db
    kept: list[DivisionRow] = []
    for r in rows:
        if r.level == 1:
            r.parent_code = None
            kept.append(r)
            continue
        parent = next((c for c in parent_candidates(r.code) if c in known), None)
        if parent is None:
            report.reject(
                r.line,
                r.code,
                f"no parent: none of {', '.join(parent_candidates(r.code))} is in the file or the database",
            )
            continue
        if r.given_parent and r.given_parent != parent and r.given_parent[:2] != "10":
            report.finding(
                f"line {r.line}: {r.code} lists parent {r.given_parent} but its code belongs under {parent}; {parent} used"
            )
        r.parent_code = parent
        kept.append(r)
    return kept


_UPSERT = """
INSERT INTO regions AS r (code, level, name, parent_code, urban_rural_code)
SELECT * FROM unnest(CAST(:codes AS text[]), CAST(:levels AS smallint[]), CAST(:names AS text[]),
                     CAST(:parents AS text[]), CAST(:urcs AS smallint[]))
ON CONFLICT (code) DO UPDATE SET
  level = EXCLUDED.level, name = EXCLUDED.name, parent_code = EXCLUDED.parent_code,
  urban_rural_code = EXCLUDED.urban_rural_code, updated_at = now()
WHERE (r.level, r.name, r.parent_code, r.urban_rural_code)
      IS DISTINCT FROM (EXCLUDED.level, EXCLUDED.name, EXCLUDED.parent_code, EXCLUDED.urban_rural_code)
RETURNING (xmax = 0) AS inserted
"""


def import_divisions(conn: Connection, path: str | Path, actor: str = "import") -> ImportReport:
    """Load a division list into regions (parents first); same file twice changes nothing."""
    path = Path(path)
    data = path.read_bytes()
    report = ImportReport(kind="divisions", path=str(path), sha256=file_sha256(data))
    rows, rejected, encoding = parse_divisions(data)
    report.encoding = encoding
    for rj in rejected:
        report.reject(rj["line"], rj["id"], rj["reason"])
    for r in rows:
        for note in r.notes:
            report.finding(f"line {r.line}: {r.code}: {note}")
    rows = _resolve_parents(conn, rows, report)
    rows.sort(key=lambda r: (r.level, r.code))
    report.total = len(rows) + len(report.rejected)
    for level in range(1, 6):
        batch = [r for r in rows if r.level == level]
        if not batch:
            continue
        result = conn.execute(
            text(_UPSERT),
            {
                "codes": [r.code for r in batch],
                "levels": [r.level for r in batch],
                "names": [r.name for r in batch],
                "parents": [r.parent_code for r in batch],
                "urcs": [r.urban_rural_code for r in batch],
            },
        ).all()
        report.inserted += sum(1 for x in result if x.inserted)
        report.updated += sum(1 for x in result if not x.inserted)
    report.unchanged = len(rows) - report.inserted - report.updated
    record_import(conn, report, actor)
    return report
