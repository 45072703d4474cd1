"""The receiver's database side: panel accounts (device, AES key) and restorals noted on the
open alarm they restore."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine

from geo.device_reads import require_active_device
from ingest.events import emit_event

ACCOUNT = re.compile(r"^[0-9A-F]{3,16}$")
RESTORAL_WAIT_S = 3.0  # the alarm may still be on its way through ingest


class SiaStore:
    """Synchronous database calls of the receiver (run them off the event loop)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def accounts(self) -> list[tuple[str, str, str | None]]:
        """(account, device id, AES key or None) of every account of an active device."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.account, a.device_id, a.aes_key FROM sia_accounts a "
                    "JOIN devices d ON d.id = a.device_id WHERE d.retired_at IS NULL"
                )
            )
            return [(r.account, r.device_id, r.aes_key) for r in rows]

    def set_account(self, account: str, device_id: str, key: str | None) -> None:
        """Map a panel account to a registered device (with its AES key, if it encrypts)."""
        account = account.upper()
        if not ACCOUNT.match(account):
            raise ValueError(f"account {account!r}: 3-16 hexadecimal characters")
        if key is not None and len(key) not in (16, 24, 32):
            raise ValueError("key: 16, 24 or 32 characters (AES-128/192/256), as set in the panel")
        with self.engine.begin() as conn:
            require_active_device(conn, device_id)
            conn.execute(
                text(
                    "INSERT INTO sia_accounts (account, device_id, aes_key) VALUES (:a, :d, :k) "
                    "ON CONFLICT (account) DO UPDATE SET device_id = EXCLUDED.device_id, "
                    "aes_key = EXCLUDED.aes_key, updated_at = now()"
                ),
                {"a": account, "d": device_id, "k": key},
            )

    def annotate_restoral(self, device_id: str, kind: str, note: str, detail: dict) -> int | None:
        """Note a restoral on the device's newest open alarm of that kind (operators close it);
        the alarm's id, or None when there is none (waits briefly for one in flight)."""
        import time

        deadline = time.monotonic() + RESTORAL_WAIT_S
        while True:
            with self.engine.begin() as conn:
                row = conn.execute(
                    text(
                        "SELECT id, state, region_code FROM alarms WHERE device_id = :d "
                        "AND kind = :k AND state NOT IN ('resolved', 'false_alarm') "
                        "ORDER BY raised_at DESC LIMIT 1 FOR UPDATE"
                    ),
                    {"d": device_id, "k": kind},
                ).first()
                if row is not None:
                    now = datetime.now(UTC)
                    conn.execute(
                        text(
                            "INSERT INTO alarm_events (alarm_id, state, actor, at, note) "
                            "VALUES (:id, :s, 'sia-dc09', :at, :n)"
                        ),
                        {"id": row.id, "s": row.state, "at": now, "n": note},
                    )
                    conn.execute(
                        text(
                            "UPDATE alarms SET detail = coalesce(detail, '{}'::jsonb) || "
                            "jsonb_build_object('restored_at', CAST(:at AS text)) WHERE id = :id"
                        ),
                        {"id": row.id, "at": now.isoformat()},
                    )
                    emit_event(
                        conn,
                        "alarm.updated",
                        row.region_code,
                        {
                            "id": row.id,
                            "device_id": device_id,
                            "kind": kind,
                            "state": row.state,
                            "actor": "sia-dc09",
                            "at": now.isoformat(),
                            "note": note,
                            "restoral": detail.get("sia"),
                        },
                    )
                    return row.id
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
