"""Dead letters: reading back what the worker refused (raw bytes, topic, time, reason)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingest.dbconn import Conn, execute


@dataclass(frozen=True)
class DeadLetter:
    id: int
    received_at: datetime
    topic: str
    payload: bytes
    reason: str

    @property
    def size(self) -> int:
        return len(self.payload)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "topic": self.topic,
            "bytes": self.size,
            "payload_base64": base64.b64encode(self.payload[:4096]).decode(),
            "reason": self.reason,
        }


def list_dead_letters(
    conn: Conn, limit: int = 20, topic_contains: str | None = None
) -> list[DeadLetter]:
    """Newest first, optionally only topics containing some text."""
    rows = execute(
        conn,
        "SELECT id, received_at, topic, payload, reason FROM dead_letters "
        "WHERE %s::text IS NULL OR strpos(topic, %s::text) > 0 ORDER BY id DESC LIMIT %s",
        (topic_contains, topic_contains, limit),
    ).fetchall()
    return [DeadLetter(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]


def summary(conn: Conn) -> list[tuple[str, int]]:
    """Counts by reason category: the text before the first colon of the reason."""
    rows = execute(
        conn,
        "SELECT split_part(reason, ':', 1) AS c, count(*) FROM dead_letters GROUP BY c "
        "ORDER BY count(*) DESC",
    ).fetchall()
    return [(r[0], int(r[1])) for r in rows]
