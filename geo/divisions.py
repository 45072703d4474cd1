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
    "urban_rural_code": (
        "urban_rural_code",
        "ur_code",
        "urcode",
        "urc",
        "urban_rural",
        "urban_rural_type",
        "城乡分类代码",
        "城乡分类",
        "城乡划分代码",
        "城乡属性代码",
        "城乡代码",
    ),
    "name": ("name", "名称", "单位名称"),
    "level": ("level", "级别", "层级"),
    "parent_code": ("parent_code", "parent", "上级代码", "上级区划代码"),
    "lon": ("lon", "lng", "longitude", "x", "经度"),
    "lat": ("lat", "latitude", "y", "纬度"),
}
# versioned headers of the urban-rural code: ur_code_2016, 城乡分类代码2023, urban_rural_code_2020...
_URC_VERSIONED = re.compile(
    r"^(ur_?code|urban_rural(_code)?|城乡分类代码|城乡划分代码)[_ ]?(19|20)\d\d$"
)


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
    lon: float | None = None
    lat: float | None = None
    parent_code: str | None = None
    given_parent: str | None = None
    notes: list[str] = field(default_factory=list)
    tail: bool = False  # the file's last line, without a line end (may be cut short)


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
    if "urban_rural_code" not in found:
        # the newest versioned column wins (ur_code_2016 and ur_code_2023: 2023)
        versioned = sorted((h[-4:], i) for i, h in enumerate(lowered) if _URC_VERSIONED.match(h))
        if versioned:
            found["urban_rural_code"] = versioned[-1][1]
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
    if not rows:
        raise ValueError("the file is empty: no division rows")
    truncated_tail = not content.endswith(("\n", "\r"))
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
        if not rows:
            raise ValueError("the file has a header but no division rows")
    widths = sorted(len(c) for _, c in rows)
    usual_width = widths[len(widths) // 2]
    seen: dict[str, int] = {}
    for idx, (number, cells) in enumerate(rows):
        if truncated_tail and idx == len(rows) - 1 and len(rows) > 1 and len(cells) < usual_width:
            rejected.append(
                {
                    "line": number,
                    "id": cells[0] if cells else None,
                    "reason": f"the last line looks truncated (no line end, {len(cells)} of "
                    f"{usual_width} columns); not imported",
                }
            )
            continue
        lon_text = lat_text = ""
        if cols is not None:
            code, urc, name = (_cell(cells, cols, k) for k in ("code", "urban_rural_code", "name"))
            level_text, parent = _cell(cells, cols, "level"), _cell(cells, cols, "parent_code")
            lon_text, lat_text = _cell(cells, cols, "lon"), _cell(cells, cols, "lat")
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
        if lon_text or lat_text:
            try:
                row.lon, row.lat = float(lon_text), float(lat_text)
            except ValueError:
                row.notes.append(f"point {lon_text!r},{lat_text!r} is not two numbers; left empty")
            else:
                if not (-180 <= row.lon <= 180 and -90 <= row.lat <= 90):
                    row.notes.append(
                        f"point {lon_text},{lat_text} is not lon/lat degrees; left empty"
                    )
                    row.lon = row.lat = None
        row.tail = truncated_tail and idx == len(rows) - 1
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
    """Keep rows whose parent is accepted (from this file, level by level) or already stored.

    A row whose parent is missing is rejected with the codes it needs; its children are then
    rejected too, naming the missing ancestor (so a city list without its province row reports
    one clear reason per row instead of failing on a foreign key).
    """
    candidates = {c for r in rows for c in parent_candidates(r.code)}
    in_db = {
        r[0]
        for r in conn.execute(
            text("SELECT code FROM regions WHERE code = ANY(:c)"), {"c": sorted(candidates)}
        )
    }
    in_file = {r.code for r in rows}
    accepted: set[str] = set()
    missing_root: dict[str, str] = {}
    kept: list[DivisionRow] = []
    for r in sorted(rows, key=lambda r: (r.level, r.code)):
        if r.level == 1:
            r.parent_code = None
            accepted.add(r.code)
            kept.append(r)
            continue
        parent = next((c for c in parent_candidates(r.code) if c in accepted or c in in_db), None)
        if parent is None:
            wanted = parent_candidates(r.code)
            root = next((missing_root[c] for c in wanted if c in missing_root), None)
            if root is not None:
                reason = (
                    f"no parent: its ancestor {root} is neither in the file nor imported before"
                )
            elif any(c in in_file for c in wanted):
                reason = f"no parent: {', '.join(wanted)} was rejected (see its line)"
            else:
                reason = (
                    f"no parent: {', '.join(wanted)} is neither in the file nor imported before; "
                    "import the list that contains it first (or a list with all levels)"
                )
            missing_root[r.code] = root or wanted[0]
            report.reject(r.line, r.code, reason)
            continue
        if r.given_parent and r.given_parent != parent and r.given_parent[:2] != "10":
            report.finding(
                f"line {r.line}: {r.code} lists parent {r.given_parent} but its code belongs under {parent}; {parent} used"
            )
        r.parent_code = parent
        accepted.add(r.code)
        kept.append(r)
    if missing_root:
        roots = sorted({v for v in missing_root.values()})
        report.finding(
            f"{len(missing_root)} row(s) not imported because their parents are missing: "
            f"{', '.join(roots[:5])}{' …' if len(roots) > 5 else ''}; import the parent list first"
        )
    return kept


def _refuse_truncated(
    conn: Connection, rows: list[DivisionRow], report: ImportReport
) -> list[DivisionRow]:
    """A last line without a line end whose name is a cut-short stored name is refused, not a rename."""
    tail = [r for r in rows if r.tail]
    if not tail:
        return rows
    r = tail[0]
    stored = conn.execute(text("SELECT name FROM regions WHERE code = :c"), {"c": r.code}).scalar()
    if stored is not None and stored != r.name and stored.startswith(r.name):
        report.reject(
            r.line,
            r.code,
            f"the last line looks truncated (no line end; name {r.name!r} is the start of the "
            f"stored {stored!r}); not renamed",
        )
        return [x for x in rows if x is not r]
    return rows


_UPSERT = """
INSERT INTO regions AS r (code, level, name, parent_code, urban_rural_code)
SELECT * FROM unnest(CAST(:codes AS text[]), CAST(:levels AS smallint[]), CAST(:names AS text[]),
                     CAST(:parents AS text[]), CAST(:urcs AS smallint[]))
ON CONFLICT (code) DO UPDATE SET
  level = EXCLUDED.level, name = EXCLUDED.name, parent_code = EXCLUDED.parent_code,
  urban_rural_code = coalesce(EXCLUDED.urban_rural_code, r.urban_rural_code), retired_at = NULL,
  updated_at = now()
WHERE (r.level, r.name, r.parent_code, r.urban_rural_code, r.retired_at)
      IS DISTINCT FROM (EXCLUDED.level, EXCLUDED.name, EXCLUDED.parent_code,
                        coalesce(EXCLUDED.urban_rural_code, r.urban_rural_code), NULL)
RETURNING (xmax = 0) AS inserted
"""


_RETIRE = """
UPDATE regions r SET retired_at = now(), updated_at = now()
WHERE r.retired_at IS NULL AND r.parent_code = ANY(:parents) AND NOT (r.code = ANY(:codes))
RETURNING r.code, r.name, r.level
"""


def _retire_missing(conn: Connection, rows: list[DivisionRow], report: ImportReport) -> None:
    """Codes abolished between list versions: a parent listed in the file with its children
    loses the stored children the file no longer has. They are kept with a retired date (not
    deleted: devices and past audits refer to them) and are not audited."""
    # only parents the file lists themselves: a file of a few villages' points retires nothing
    listed = {r.code for r in rows}
    parents = sorted({r.parent_code for r in rows if r.level >= 4 and r.parent_code in listed})
    if not parents:
        return
    codes = [r.code for r in rows]
    retired = conn.execute(text(_RETIRE), {"parents": parents, "codes": codes}).all()
    # a retired township's villages go with it
    below = [r.code for r in retired if r.level < 5]
    while below:
        more = conn.execute(
            text(
                "UPDATE regions SET retired_at = now(), updated_at = now() "
                "WHERE retired_at IS NULL AND parent_code = ANY(:p) RETURNING code, name, level"
            ),
            {"p": below},
        ).all()
        retired += more
        below = [r.code for r in more if r.level < 5]
    if retired:
        report.derived["retired"] = len(retired)
        sample = ", ".join(f"{r.code} {r.name}" for r in retired[:5])
        report.finding(
            f"{len(retired)} code(s) no longer in this list were retired (kept, not audited): "
            f"{sample}{' …' if len(retired) > 5 else ''}"
        )


def _store_points(
    conn: Connection, rows: list[DivisionRow], crs: str, report: ImportReport
) -> list[str]:
    """Official points of units (lon/lat columns) in WGS 84; returns the counties touched."""
    from hardware.crs import to_wgs84

    pts = [r for r in rows if r.lon is not None and r.lat is not None]
    if not pts:
        return []
    lons, lats = [], []
    for r in pts:
        lon, lat = to_wgs84(r.lon, r.lat, crs)
        lons.append(lon)
        lats.append(lat)
    changed = conn.execute(
        text(
            "UPDATE regions r SET point = ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326), updated_at = now() "
            "FROM unnest(CAST(:codes AS text[]), CAST(:lons AS float8[]), CAST(:lats AS float8[])) "
            "AS u(code, lon, lat) WHERE r.code = u.code "
            "AND r.point IS DISTINCT FROM ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326) RETURNING r.code"
        ),
        {"codes": [r.code for r in pts], "lons": lons, "lats": lats},
    ).all()
    if changed:
        report.derived["points"] = len(changed)
    return sorted({r.code[:6] for r in changed})


def import_divisions(
    conn: Connection,
    path: str | Path,
    actor: str = "import",
    *,
    crs: str = "wgs84",
    retire_missing: bool = True,
) -> ImportReport:
    """Load a division list into regions (parents first); same file twice changes nothing.

    Urban-rural codes already stored are kept when the file has none; codes the file no longer
    lists under a parent it lists completely are retired (`retire_missing`); lon/lat columns
    (in `crs`) become the units' official points and rebuild the approximate village areas.
    """
    from hardware.crs import check_crs

    crs = check_crs(crs)
    path = Path(path)
    data = path.read_bytes()
    report = ImportReport(kind="divisions", path=str(path), sha256=file_sha256(data), crs=crs)
    rows, rejected, encoding = parse_divisions(data)
    report.encoding = encoding
    for rj in rejected:
        report.reject(rj["line"], rj["id"], rj["reason"])
    for r in rows:
        for note in r.notes:
            report.finding(f"line {r.line}: {r.code}: {note}")
    rows = _refuse_truncated(conn, rows, report)
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
    if retire_missing:
        _retire_missing(conn, rows, report)
    counties = _store_points(conn, rows, crs, report)
    if report.derived.get("retired"):
        counties = sorted(set(counties) | {r.code[:6] for r in rows if r.level >= 3})
    if counties:
        from geo.village_areas import rebuild

        report.derived["approximate_village_areas"] = rebuild(conn, counties)
    record_import(conn, report, actor)
    return report
