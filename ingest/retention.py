"""Retention of what ingest keeps about refused input: dead letters (by age and total size) and
pending devices (by age), deleted in small transactions beside live traffic."""

from __future__ import annotations

import threading

import psycopg

CHUNK = 5000


def prune_dead_letters(
    conn: psycopg.Connection,
    retention_h: float,
    max_bytes: int,
    pause_s: float = 0.0,
    stop: threading.Event | None = None,
) -> int:
    """Delete dead letters older than retention_h, then the oldest while their payloads total
    more than max_bytes; how many (autocommit connection: each chunk is its own transaction)."""
    gone = _delete_chunks(
        conn, "received_at < now() - make_interval(secs => %s)", retention_h * 3600.0, pause_s, stop
    )
    # The newest first, summing payload sizes (octet_length reads the stored size, not the
    # TOASTed bytes); everything past the first row that crosses max_bytes goes.
    row = conn.execute(
        "SELECT id FROM (SELECT id, sum(octet_length(payload)) OVER (ORDER BY id DESC) AS s "
        "FROM dead_letters) x WHERE s > %s ORDER BY id DESC LIMIT 1",
        (max_bytes,),
    ).fetchone()
    if row is not None:
        gone += _delete_chunks(conn, "id <= %s", row[0], pause_s, stop)
    return gone


def _delete_chunks(
    conn: psycopg.Connection,
    where: str,
    value: object,
    pause_s: float,
    stop: threading.Event | None,
) -> int:
    """Delete the dead letters matching `where` (one %s: `value`) CHUNK rows per transaction,
    pausing `pause_s` between chunks, until none are left or `stop` is set; how many."""
    gone = 0
    while stop is None or not stop.is_set():
        n = conn.execute(
            "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters "
            f"WHERE {where} LIMIT %s)",
            (value, CHUNK),
        ).rowcount
        gone += n
        if n < CHUNK:
            break
        if pause_s and stop is not None:
            stop.wait(pause_s)
    return gone


def prune_pending(conn: psycopg.Connection, ttl_h: float) -> int:
    """Delete pending devices not heard from for ttl_h; how many."""
    return conn.execute(
        "DELETE FROM pending_devices WHERE last_seen < now() - make_interval(secs => %s)",
        (ttl_h * 3600.0,),
    ).rowcount
