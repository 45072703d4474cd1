"""Vision's database side: camera lists, per-camera settings, references, inspection rounds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, text

from gridwatch import schema
from hardware.kinds import KINDS
from hardware.region_code import region_prefix
from vision.pipeline import CameraConfig
from vision.reference import Reference

CAMERA_KINDS: tuple[str, ...] = tuple(
    sorted(name for name, spec in KINDS.items() if "snapshot" in spec.publishes)
)


@dataclass(frozen=True)
class CameraRow:
    """A registered camera as the vision side needs it."""

    id: str
    kind: str
    region_code: str | None
    stream_url: str | None


def cameras(engine: Engine, region: str | None = None) -> list[CameraRow]:
    """Registered, not retired cameras (of every kind that has a picture), optionally by region."""
    sql = (
        "SELECT id, kind, region_code, stream_url FROM devices "
        "WHERE retired_at IS NULL AND kind = ANY(:kinds)"
    )
    args: dict[str, object] = {"kinds": list(CAMERA_KINDS)}
    if region:
        sql += " AND region_code LIKE :prefix"
        args["prefix"] = region_prefix(region) + "%"
    sql += " ORDER BY id"
    with engine.connect() as conn:
        rows = conn.execute(text(sql), args).all()
    return [CameraRow(r[0].strip(), r[1], (r[2] or "").strip() or None, r[3]) for r in rows]


def camera_configs(engine: Engine, region: str | None = None) -> list[CameraConfig]:
    """A CameraConfig per camera: its stored vision settings, its stream URL if it has one."""
    rows = cameras(engine, region)
    with engine.connect() as conn:
        stored = {
            r[0].strip(): r[1]
            for r in conn.execute(text("SELECT device_id, config FROM vision_cameras"))
        }
    out = []
    for r in rows:
        cfg = dict(stored.get(r.id) or {})
        cfg["id"] = r.id
        if r.stream_url and not cfg.get("source"):
            cfg["source"] = r.stream_url
        out.append(CameraConfig.model_validate(cfg))
    return out


def save_camera_config(engine: Engine, cfg: CameraConfig) -> None:
    """Store one camera's vision settings (upsert)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO vision_cameras (device_id, config) VALUES (:id, CAST(:c AS jsonb)) "
                "ON CONFLICT (device_id) DO UPDATE SET config = EXCLUDED.config, updated_at = now()"
            ),
            {"id": cfg.id, "c": cfg.model_dump_json(exclude={"id"})},
        )


def save_reference(engine: Engine, device_id: str, blob: bytes, approved_by: str | None = None):
    """Store a camera's learned reference (upsert)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO vision_references (device_id, reference, approved_by, approved_at) "
                "VALUES (:id, :b, CAST(:who AS text), "
                "CASE WHEN CAST(:who AS text) IS NULL THEN NULL ELSE now() END) "
                "ON CONFLICT (device_id) DO UPDATE SET reference = EXCLUDED.reference, "
                "learned_at = now(), approved_by = COALESCE(EXCLUDED.approved_by, "
                "vision_references.approved_by), approved_at = COALESCE(EXCLUDED.approved_at, "
                "vision_references.approved_at)"
            ),
            {"id": device_id, "b": blob, "who": approved_by},
        )


def load_references(engine: Engine, ids: list[str] | None = None) -> dict[str, bytes]:
    """Stored reference blobs by device id (all, or those of `ids`)."""
    sql = "SELECT device_id, reference FROM vision_references"
    args: dict[str, object] = {}
    if ids is not None:
        sql += " WHERE device_id = ANY(:ids)"
        args["ids"] = ids
    with engine.connect() as conn:
        return {r[0].strip(): bytes(r[1]) for r in conn.execute(text(sql), args)}


def references(engine: Engine, ids: list[str] | None = None) -> dict[str, Reference]:
    """Loaded references; unreadable blobs are skipped (the camera simply relearns)."""
    out = {}
    for k, blob in load_references(engine, ids).items():
        try:
            out[k] = Reference.from_bytes(blob)
        except ValueError:
            continue
    return out


def forget_reference(engine: Engine, device_id: str) -> bool:
    """Drop a camera's reference so it is relearned (approval of a changed view)."""
    with engine.begin() as conn:
        n = conn.execute(
            text("DELETE FROM vision_references WHERE device_id = :id"), {"id": device_id}
        ).rowcount
    return bool(n)


# ---- inspection rounds ---------------------------------------------------------------------


def open_round(engine: Engine, region: str, total: int, resume: bool = True) -> tuple[int, bool]:
    """(round id, resumed): the unfinished round of this region, or a new one."""
    with engine.begin() as conn:
        if resume:
            row = conn.execute(
                text(
                    "SELECT id FROM inspection_rounds WHERE region_code = :r "
                    "AND status IN ('running', 'interrupted') ORDER BY started_at DESC LIMIT 1"
                ),
                {"r": region},
            ).first()
            if row:
                conn.execute(
                    text(
                        "UPDATE inspection_rounds SET status = 'running', total = :t WHERE id = :i"
                    ),
                    {"t": total, "i": row[0]},
                )
                return int(row[0]), True
        rid = conn.execute(
            text("INSERT INTO inspection_rounds (region_code, total) VALUES (:r, :t) RETURNING id"),
            {"r": region, "t": total},
        ).scalar_one()
    return int(rid), False


def done_devices(engine: Engine, round_id: int) -> set[str]:
    """Devices that already have a result in this round."""
    with engine.connect() as conn:
        return {
            r[0].strip()
            for r in conn.execute(
                text("SELECT device_id FROM inspection_results WHERE round_id = :i"),
                {"i": round_id},
            )
        }


def record_result(
    engine: Engine,
    round_id: int,
    device_id: str,
    intact: bool,
    faults: list[dict],
    thumbnail: bytes | None,
    error: str | None,
) -> None:
    """Write one camera's outcome (idempotent: a repeat overwrites)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO inspection_results (round_id, device_id, intact, faults, thumbnail, "
                "error) VALUES (:r, :d, :ok, CAST(:f AS jsonb), :t, :e) "
                "ON CONFLICT (round_id, device_id) DO UPDATE SET ts = now(), intact = EXCLUDED.intact, "
                "faults = EXCLUDED.faults, thumbnail = EXCLUDED.thumbnail, error = EXCLUDED.error"
            ),
            {
                "r": round_id,
                "d": device_id,
                "ok": intact,
                "f": json.dumps(faults),
                "t": thumbnail,
                "e": error,
            },
        )


def finish_round(engine: Engine, round_id: int, status: str) -> None:
    """Mark a round done or interrupted."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE inspection_rounds SET status = :s, "
                "finished_at = CASE WHEN :s = 'done' THEN now() ELSE finished_at END WHERE id = :i"
            ),
            {"s": status, "i": round_id},
        )


def round_summary(engine: Engine, round_id: int) -> dict[str, object]:
    """Counts of a round: total, inspected, intact, faulty, by fault code."""
    with engine.connect() as conn:
        total, status = conn.execute(
            text("SELECT total, status FROM inspection_rounds WHERE id = :i"), {"i": round_id}
        ).one()
        rows = conn.execute(
            text("SELECT intact, faults FROM inspection_results WHERE round_id = :i"),
            {"i": round_id},
        ).all()
    by: dict[str, int] = {}
    for _, faults in rows:
        for f in faults or []:
            code = f.get("code") if isinstance(f, dict) else str(f)
            by[code] = by.get(code, 0) + 1
    intact = sum(1 for r in rows if r[0])
    return {
        "round": round_id,
        "status": status,
        "total": total,
        "inspected": len(rows),
        "intact": intact,
        "faulty": len(rows) - intact,
        "by_fault": dict(sorted(by.items())),
        "intact_rate": round(intact / len(rows), 4) if rows else None,
    }


# --------------------------------------------------------------------------- pictures and health

_health = schema.camera_health


def recent_health(conn: Connection, device_id: str, limit: int) -> list[Row[Any]]:
    """The camera's newest diagnoses (ts, intact, faults, fault scores, has_image), newest first."""
    stmt = (
        select(
            _health.c.ts,
            _health.c.intact,
            _health.c.faults,
            _health.c.metrics["fault_scores"].label("scores"),
            _health.c.thumbnail.is_not(None).label("has_image"),
        )
        .where(_health.c.device_id == device_id)
        .order_by(_health.c.ts.desc())
        .limit(limit)
    )
    return list(conn.execute(stmt).all())


def health_picture(conn: Connection, device_id: str, at: datetime | None) -> Row[Any] | None:
    """The newest diagnosis picture (ts, thumbnail) at or before `at` (None: the newest of all)."""
    stmt = (
        select(_health.c.ts, _health.c.thumbnail)
        .where(_health.c.device_id == device_id, _health.c.thumbnail.is_not(None))
        .order_by(_health.c.ts.desc())
        .limit(1)
    )
    if at is not None:
        stmt = stmt.where(_health.c.ts <= at)
    return conn.execute(stmt).first()


def latest_snapshot(conn: Connection, device_id: str) -> Row[Any] | None:
    """The camera's latest snapshot (at, jpeg), None when it has sent none."""
    snap = schema.device_snapshots
    return conn.execute(select(snap.c.at, snap.c.jpeg).where(snap.c.device_id == device_id)).first()
