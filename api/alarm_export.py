"""Alarm history files: the same rows as CSV (UTF-8 with BOM, for Excel) or XLSX (openpyxl)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

COLUMNS = (
    "id",
    "kind",
    "severity",
    "state",
    "device_id",
    "device_name",
    "village_name",
    "township_name",
    "region_code",
    "lon",
    "lat",
    "raised_at",
    "last_raised_at",
    "repeat_count",
    "acknowledged_by",
    "acknowledged_at",
    "dispatched_by",
    "dispatched_at",
    "closed_by",
    "closed_at",
    "trail",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A value safe for a spreadsheet: times in ISO 8601, text never read as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: list[list[Any]]) -> bytes:
    """The rows under a header line, as UTF-8 CSV with a byte-order mark."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(rows: list[list[Any]]) -> bytes:
    """The rows under a bold, frozen header, as an XLSX workbook."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("alarms")
    ws.freeze_panes = "A2"
    header = []
    for name in COLUMNS:
        c = WriteOnlyCell(ws, value=name)
        c.font = Font(bold=True)
        header.append(c)
    ws.append(header)
    for row in rows:
        ws.append([cell(v) for v in row])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
