"""The audit trail: one audit_log row per state change (who, when, what)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, text


def record(
    conn: Connection,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | None,
    detail: dict[str, Any] | None,
) -> int:
    """Append an audit_log row in the caller's transaction; returns its id."""
    return conn.execute(
        text(
            "INSERT INTO audit_log (actor, action, entity, entity_id, detail) "
            "VALUES (:a, :ac, :e, :i, CAST(:d AS jsonb)) RETURNING id"
        ),
        {
            "a": actor,
            "ac": action,
            "e": entity,
            "i": entity_id,
            "d": json.dumps(detail, default=str) if detail is not None else None,
        },
    ).scalar_one()
