"""What an import did: counts, rejected rows with line and reason, repairs, findings; logged in import_files."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import Connection, text


class Rejected(BaseModel):
    """A row or feature that was not imported: where it is and why."""

    line: int | None = None
    id: str | None = None
    reason: str


class ImportReport(BaseModel):
    """The outcome of one import of one file."""

    kind: str
    path: str
    sha256: str
    encoding: str | None = None
    crs: str | None = None
    total: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = Field(default_factory=list)
    repaired: list[str] = Field(default_factory=list)
    findings: list[str] = Field(default_factory=list)
    derived: dict[str, int] = Field(default_factory=dict)
    same_file_as_before: bool = False
    # seconds per step, for benchmarks (left out of summaries and JSON)
    timings_s: dict[str, float] = Field(default_factory=dict, exclude=True)

    @property
    def status(self) -> Literal["unchanged", "changed"]:
        changed = self.inserted or self.updated or any(self.derived.values())
        return "changed" if changed else "unchanged"

    def reject(self, line: int | None, ident: object, reason: str) -> None:
        self.rejected.append(
            Rejected(line=line, id=None if ident is None else str(ident), reason=reason)
        )

    def finding(self, message: str) -> None:
        self.findings.append(message)

    def summary(self) -> dict:
        out = self.model_dump()
        out["status"] = self.status
        return out


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_import(conn: Connection, report: ImportReport, actor: str) -> None:
    """Log the import (and note whether this exact file was imported before)."""
    before = conn.execute(
        text("SELECT 1 FROM import_files WHERE kind = :k AND sha256 = :h LIMIT 1"),
        {"k": report.kind, "h": report.sha256},
    ).first()
    report.same_file_as_before = before is not None
    conn.execute(
        text(
            "INSERT INTO import_files (kind, path, sha256, crs, actor, report) "
            "VALUES (:k, :p, :h, :crs, :a, CAST(:r AS jsonb))"
        ),
        {
            "k": report.kind,
            "p": report.path,
            "h": report.sha256,
            "crs": report.crs,
            "a": actor,
            "r": report.model_dump_json(),
        },
    )
    conn.execute(
        text(
            "INSERT INTO audit_log (actor, action, entity, entity_id, detail) "
            "VALUES (:a, 'import', :k, :p, CAST(:d AS jsonb))"
        ),
        {
            "a": actor,
            "k": report.kind,
            "p": report.path,
            "d": report.model_dump_json(include={"inserted", "updated", "unchanged", "total"}),
        },
    )
