"""Camera inventories (CSV, XLSX, GeoJSON) from vendors and platforms into the device registry."""

from __future__ import annotations

import csv
import io
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from geo.divisions import decode_text
from geo.features import FeatureFileError, read_features
from geo.importlog import ImportReport, file_sha256, record_import
from hardware.crs import check_crs, out_of_china

MAX_ROWS = 2_000_000  # a bound on one file; split larger inventories
MAX_BYTES = 512 * 1024 * 1024

# Each field and the headers it is known by (lower-cased; Chinese as published by platforms).
ALIASES: dict[str, tuple[str, ...]] = {
    "id": (
        "id",
        "device_id",
        "gb_id",
        "gbid",
        "gb28181",
        "code",
        "编码",
        "国标编码",
        "设备编码",
        "设备国标编码",
        "国标id",
        "设备id",
    ),
    "name": ("name", "device_name", "名称", "设备名称", "点位名称", "摄像机名称"),
    "kind": ("kind", "type", "device_type", "类型", "设备类型"),
    "lon": ("lon", "lng", "longitude", "x", "经度"),
    "lat": ("lat", "latitude", "y", "纬度"),
    "village_code": (
        "village_code",
        "village",
        "所属村",
        "村编码",
        "所属村编码",
        "村级编码",
        "行政村编码",
        "所属行政村",
    ),
    "heading_deg": ("heading", "heading_deg", "azimuth", "朝向", "方位角", "方向角", "安装朝向"),
    "mount_height_m": ("height", "mount_height_m", "height_m", "安装高度", "高度", "杆高"),
    "focal_mm": ("focal_mm", "focal", "focal_length", "焦距"),
    "resolution": ("resolution", "分辨率"),
    "resolution_w": ("resolution_w", "width"),
    "resolution_h": ("resolution_h", "height_px"),
    "stream_url": ("stream_url", "url", "rtsp", "rtsp_url", "视频流地址", "取流地址", "流地址"),
}
_RES = re.compile(r"^\s*(\d{2,5})\s*[x×*]\s*(\d{2,5})\s*$", re.I)
_RES_WORDS = {
    "200万": (1920, 1080),
    "400万": (2560, 1440),
    "800万": (3840, 2160),
    "4k": (3840, 2160),
}


def _columns(header: list[str]) -> dict[str, str]:
    """field -> the header that carries it (first alias found)."""
    lowered = {str(h).strip().lower(): h for h in header if h is not None}
    out = {}
    for field, names in ALIASES.items():
        for name in names:
            if name in lowered:
                out[field] = lowered[name]
                break
    return out


def _read_rows(path: Path, data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """(line, {header: value}) of a CSV, XLSX or GeoJSON file (GeoJSON points give lon/lat)."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm") or data[:2] == b"PK":
        from openpyxl import load_workbook

        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a damaged file
            raise ValueError(f"not a readable XLSX workbook: {exc}") from None
        sheet = book.worksheets[0]
        it = sheet.iter_rows(values_only=True)
        header = next(it, None)
        if header is None:
            return []
        names = [str(h).strip() if h is not None else "" for h in header]
        rows = []
        for i, values in enumerate(it, start=2):
            if values is None or all(v is None or v == "" for v in values):
                continue
            rows.append((i, dict(zip(names, values, strict=False))))
            if len(rows) > MAX_ROWS:
                raise ValueError(f"more than {MAX_ROWS:,} rows: split the file")
        return rows
    if suffix in (".geojson", ".json") or data.lstrip()[:1] == b"{":
        try:
            ff = read_features(path, "wgs84")
        except FeatureFileError as exc:
            raise ValueError(str(exc)) from None
        rows = []
        for f in ff.features:
            row = dict(f.props)
            if f.geom is not None and f.geom.geom_type == "Point":
                row["lon"], row["lat"] = f.geom.x, f.geom.y
            if f.fid and not any(k in row for k in ALIASES["id"]):
                row["id"] = f.fid
            rows.append((f.line or 0, row))
        for line, fid, reason in ff.rejected:
            rows.append((line or 0, {"id": fid, "__error__": reason}))
        return rows
    content, _ = decode_text(data)
    # What csv.DictReader gives (dropping the values beyond the header's), built with a C-level
    # zip instead of DictReader's Python loop per row.
    reader = csv.reader(io.StringIO(content))
    header = next(reader, None)
    if header is None:
        return []
    width = len(header)
    rows = []
    for values in reader:
        if not values:  # a blank line, which DictReader skips
            continue
        if len(values) < width:
            values = values + [None] * (width - len(values))
        rows.append((reader.line_num, dict(zip(header, values, strict=False))))
        if len(rows) > MAX_ROWS:
            raise ValueError(f"more than {MAX_ROWS:,} rows: split the file")
    return rows


def _num(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)  # the common case: a plain number (spaces allowed)
    except ValueError:
        pass
    s = str(value).strip().lower()
    if not s:
        return None
    return float(s.removesuffix("mm").removesuffix("m").removesuffix("°").strip())


@lru_cache(maxsize=256)
def _resolution(text: str) -> tuple[int, int] | None:
    """(width, height) of a resolution as written (1920x1080, 200万, 4K), None when unreadable;
    an inventory writes a handful of them, each parsed once."""
    m = _RES.match(text)
    return (int(m.group(1)), int(m.group(2))) if m else _RES_WORDS.get(text.lower())


def _registration(row: dict, cols: dict[str, str], crs: str) -> dict:
    """A DeviceRegistration-shaped dict from a row (ValueError with the column on bad input)."""
    values: dict[str, Any] = {
        f: v.strip() if isinstance(v := row.get(h), str) else v for f, h in cols.items()
    }
    get = values.get
    reg: dict[str, Any] = {"crs": crs}
    device_id = get("id")
    if device_id is None or device_id == "":
        raise ValueError("id: empty (the 20-digit GB/T 28181 code)")
    reg["id"] = str(int(device_id)) if isinstance(device_id, int | float) else str(device_id)
    if get("name"):
        reg["name"] = str(get("name"))
    for field in ("lon", "lat"):
        try:
            reg[field] = _num(get(field))
        except ValueError:
            raise ValueError(f"{field}: {get(field)!r} is not a number") from None
        if reg[field] is None:
            raise ValueError(f"{field}: empty")
    for field in ("heading_deg", "mount_height_m", "focal_mm"):
        value: Any = get(field)
        number: float | None
        try:
            # a plain number as float() reads it, else _num (None, empty, units; the same
            # result for what float() reads)
            number = float(value)
        except (TypeError, ValueError):
            try:
                number = _num(value)
            except ValueError:
                raise ValueError(f"{field}: {value!r} is not a number") from None
        if number is not None:
            reg[field] = number
    res = get("resolution")
    if res:
        wh = _resolution(str(res))
        if wh is None:
            raise ValueError(f"resolution: {res!r} is not like 1920x1080")
        reg["resolution_w"], reg["resolution_h"] = wh
    elif (w := get("resolution_w")) and (h := get("resolution_h")):
        reg["resolution_w"], reg["resolution_h"] = int(w), int(h)
    if get("stream_url"):
        reg["stream_url"] = str(get("stream_url"))
    village = get("village_code")
    if village not in (None, ""):
        reg["village_code"] = (
            str(int(village)) if isinstance(village, int | float) else str(village).strip()
        )
    return reg


def import_devices(
    conn: Connection,
    path: str | Path,
    *,
    crs: str | None = None,
    dry_run: bool = False,
    actor: str = "import",
) -> ImportReport:
    """Load a camera inventory: every row inserted, updated, unchanged or refused with the reason.

    Idempotent (a row equal to what is stored is `unchanged`). Village codes may be given as the
    12-digit code or as the village's name (unique within the device's county). Without `crs`
    the coordinates are taken as WGS 84 unless they disagree with the stored boundaries by a
    GCJ-02-like shift, which is refused naming --crs gcj02. `dry_run` checks and reports
    without storing.
    """
    from geo.bulk import paused_gc

    with paused_gc():
        return _import_devices(conn, Path(path), crs, dry_run, actor)


def _import_devices(
    conn: Connection, path: Path, crs: str | None, dry_run: bool, actor: str
) -> ImportReport:
    """import_devices with the garbage collector paused."""
    from geo.bulk import register_many, step
    from geo.crs_guard import check_points

    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"{path}: larger than {MAX_BYTES // 2**20} MB; split the file")
    data = path.read_bytes()
    declared = crs is not None
    crs = check_crs(crs or "wgs84")
    report = ImportReport(kind="devices", path=str(path), sha256=file_sha256(data), crs=crs)
    tm = report.timings_s
    with step(tm, "read"):
        rows = _read_rows(path, data)
    if not rows:
        raise ValueError("the file has no device rows")
    cols = _columns(list({k for _, r in rows[:50] for k in r}))
    missing = [f for f in ("id", "lon", "lat") if f not in cols]
    if missing:
        raise ValueError(
            f"no {', '.join(missing)} column (headers such as id/国标编码, lon/经度, lat/纬度)"
        )
    with step(tm, "rows"):
        regs, lines = _parse_rows(rows, cols, crs, report)
    report.total = len(rows)
    with step(tm, "checks"):
        _resolve_village_names(conn, regs, lines, report)
        points = [(r["lon"], r["lat"]) for r in regs]
        if cols.get("kind"):
            _check_kinds(rows, cols["kind"], regs, lines, report)
    totals = register_many(
        conn,
        regs,
        actor,
        skip_invalid=True,
        reload_broker=not dry_run,
        skip_unchanged=True,
        dry_run=dry_run,
        timings=tm,
        # the coordinates' CRS is checked on the database while the first chunk is prepared
        # (~0.02 s of the server's there): nothing is stored before it passes
        before_store=lambda: check_points(conn, points, crs, declared),
    )
    for r in totals["rejected"]:
        report.reject(lines[r["index"]], r["id"], f"{r['field']}: {r['reason']}")
    report.inserted, report.updated = totals["inserted"], totals["updated"]
    report.unchanged = totals.get("unchanged", 0)
    if totals.get("outside"):
        report.finding(f"{totals['outside']} device(s) stand outside every imported region")
    if not dry_run:
        with step(tm, "record"):
            record_import(conn, report, actor)
    else:
        report.finding("dry run: nothing was stored")
    return report


def _parse_rows(
    rows: list[tuple[int, dict[str, Any]]], cols: dict[str, str], crs: str, report: ImportReport
) -> tuple[list[dict], list[int]]:
    """Registrations from the rows with each one's line; bad rows rejected with the reason."""
    regs, lines = [], []
    for line, row in rows:
        if "__error__" in row:
            report.reject(line, row.get("id"), row["__error__"])
            continue
        try:
            reg = _registration(row, cols, crs)
        except ValueError as exc:
            report.reject(line, row.get(cols["id"]), str(exc))
            continue
        if out_of_china(reg["lon"], reg["lat"]):
            report.reject(
                line,
                reg["id"],
                f"position {reg['lon']},{reg['lat']} is outside China: wrong columns or --crs?",
            )
            continue
        regs.append(reg)
        lines.append(line)
    return regs, lines


def _check_kinds(
    rows: list[tuple[int, dict]], header: str, regs: list[dict], lines: list[int], report
) -> None:
    """A kind column naming another gridwatch kind than the id's type code is refused."""
    from hardware.gbid import GbIdError, parse_device_id
    from hardware.kinds import KINDS, kind_for_type

    known = {k.lower() for k in KINDS}
    given = {line: str(row.get(header) or "").strip().lower() for line, row in rows}
    keep = []
    for r, line in zip(regs, lines, strict=True):
        kind = given.get(line, "")
        if kind in known:
            try:
                derived = kind_for_type(parse_device_id(r["id"]).type_code).name
            except (GbIdError, ValueError):
                derived = kind  # the registry refuses the id itself with its reason
            if derived != kind:
                report.reject(
                    line, r["id"], f"kind: {kind!r} but the id's type code says {derived!r}"
                )
                continue
        keep.append((r, line))
    regs[:] = [r for r, _ in keep]
    lines[:] = [line for _, line in keep]


def _resolve_village_names(
    conn: Connection, regs: list[dict], lines: list[int], report: ImportReport
) -> None:
    """A village given by name becomes its code when the name is unique in the device's county."""
    named = [r for r in regs if r.get("village_code") and not r["village_code"].isdigit()]
    if not named:
        return
    rows = conn.execute(
        text(
            "SELECT left(code, 6) AS county, name, min(code) AS code, count(*) AS n FROM regions "
            "WHERE level = 5 AND retired_at IS NULL AND name = ANY(:names) GROUP BY 1, 2"
        ),
        {"names": sorted({r["village_code"] for r in named})},
    ).all()
    index = {(r.county, r.name): (r.code, r.n) for r in rows}
    for r in named:
        hit = index.get((r["id"][:6], r["village_code"]))
        if hit is None or hit[1] != 1:
            why = "no" if hit is None else "more than one"
            r["__refuse__"] = (
                f"village_code: {why} village named {r['village_code']!r} in county {r['id'][:6]}; "
                "give the 12-digit code"
            )
        else:
            r["village_code"] = hit[0]
    keep = []
    for r, line in zip(regs, lines, strict=True):
        if "__refuse__" in r:
            report.reject(line, r["id"], r.pop("__refuse__"))
        else:
            keep.append((r, line))
    regs[:] = [r for r, _ in keep]
    lines[:] = [line for _, line in keep]
