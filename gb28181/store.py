"""The gateway's database side: which devices it knows (with their SIP password digest, CRS,
parent and registration), registrations saved in groups, catalogs turned into devices."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine

from gb28181.manscdp import CatalogItem
from geo.device_reads import require_active_device

log = logging.getLogger(__name__)
NOT_DEVICES = {"200", "215", "216"}  # platform, business group, virtual organisation: not devices


@dataclass
class Known:
    """What the gateway needs of one registered device or channel."""

    device_id: str
    heartbeat_s: int
    edition: int
    ha1: str | None
    crs: str
    parent_id: str | None
    lon: float | None
    lat: float | None
    transport: str | None = None
    address: str | None = None
    registered_until: float | None = None
    channel_status: str | None = None


_SELECT = """
SELECT d.id, d.heartbeat_s, d.gb_edition, g.sip_ha1, coalesce(g.crs, 'wgs84') AS crs,
       g.parent_id, ST_X(d.position) AS lon, ST_Y(d.position) AS lat, g.transport, g.address,
       extract(epoch FROM g.registered_until) AS until, g.channel_status
FROM devices d LEFT JOIN gb_devices g ON g.device_id = d.id
WHERE d.retired_at IS NULL
"""


def _known(r) -> Known:
    return Known(
        r.id,
        r.heartbeat_s or 60,
        r.gb_edition or 2016,
        r.sip_ha1,
        r.crs,
        r.parent_id,
        r.lon,
        r.lat,
        r.transport,
        r.address,
        float(r.until) if r.until is not None else None,
        r.channel_status,
    )


class GatewayStore:
    """Synchronous database calls of the gateway (run them off the event loop)."""

    def __init__(self, engine: Engine, miss_ttl_s: float = 15.0, gateway: str = "") -> None:
        self.engine = engine
        self.gateway = gateway  # this gateway's name (gb_devices.gateway of what it fronts)
        self.miss_ttl_s = miss_ttl_s
        self._misses: dict[str, float] = {}

    def load_gb(self) -> dict[str, Known]:
        """Every device with gateway state (registered devices and their channels)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(_SELECT + " AND EXISTS (SELECT 1 FROM gb_devices x WHERE x.device_id = d.id)")
            )
            return {r.id: _known(r) for r in rows}

    def load_all(self) -> dict[str, Known]:
        """Every active device (a gateway fronts any of them that registers)."""
        with self.engine.connect() as conn:
            return {r.id: _known(r) for r in conn.execute(text(_SELECT))}

    def fronted(self) -> list[str]:
        """Active devices this gateway fronts: those that last registered with it, and their
        channels."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT g.device_id FROM gb_devices g JOIN devices d ON d.id = g.device_id "
                    "WHERE d.retired_at IS NULL AND (g.gateway = :gw OR g.parent_id IN "
                    "(SELECT p.device_id FROM gb_devices p WHERE p.gateway = :gw))"
                ),
                {"gw": self.gateway},
            )
            return [r[0] for r in rows]

    def add_pending(self, device_id: str, topic: str, payload: bytes) -> bool:
        return add_pending(self.engine, device_id, topic, payload)

    def lookup(self, device_id: str) -> Known | None:
        """One registered device by id (a miss is remembered for a few seconds)."""
        missed = self._misses.get(device_id)
        if missed is not None and time.monotonic() - missed < self.miss_ttl_s:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(text(_SELECT + " AND d.id = :id"), {"id": device_id}).first()
        if row is None:
            if len(self._misses) > 100_000:
                self._misses.clear()
            self._misses[device_id] = time.monotonic()
            return None
        self._misses.pop(device_id, None)
        return _known(row)

    def save_registrations(self, rows: list[tuple[str, str, str, float | None, int]]) -> None:
        """(id, transport, address, until epoch or None for unregistered, edition), one commit."""
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO gb_devices AS g (device_id, transport, address, registered_at, "
                    "registered_until, edition, gateway, updated_at) VALUES (:id, :transport, "
                    ":address, now(), to_timestamp(:until), :edition, :gw, now()) "
                    "ON CONFLICT (device_id) DO UPDATE SET transport = EXCLUDED.transport, "
                    "gateway = EXCLUDED.gateway, "
                    "address = EXCLUDED.address, registered_until = EXCLUDED.registered_until, "
                    "registered_at = CASE WHEN EXCLUDED.registered_until IS NULL "
                    "THEN g.registered_at ELSE now() END, "
                    "edition = EXCLUDED.edition, updated_at = now()"
                ),
                [
                    {
                        "id": i,
                        "transport": t,
                        "address": a,
                        "until": u,
                        "edition": e,
                        "gw": self.gateway,
                    }
                    for i, t, a, u, e in rows
                ],
            )

    def set_device(
        self, device_id: str, *, password: str | None, realm: str, crs: str | None
    ) -> None:
        """An installer's per-device settings: its own SIP password, the CRS it reports in."""
        from gb28181.digest import ha1

        with self.engine.begin() as conn:
            require_active_device(conn, device_id)
            conn.execute(
                text(
                    "INSERT INTO gb_devices (device_id, sip_ha1, crs) "
                    "VALUES (:id, :ha1, coalesce(:crs, 'wgs84')) ON CONFLICT (device_id) DO UPDATE "
                    "SET sip_ha1 = coalesce(:ha1, gb_devices.sip_ha1), "
                    "crs = coalesce(:crs, gb_devices.crs), updated_at = now()"
                ),
                {
                    "id": device_id,
                    "ha1": ha1(device_id, realm, password) if password else None,
                    "crs": crs,
                },
            )

    def save_info(self, device_id: str, info: dict) -> None:
        """DeviceInfo/DeviceStatus answers: vendor and model on the device, the rest here."""
        with self.engine.begin() as conn:
            if info.get("manufacturer") or info.get("model"):
                conn.execute(
                    text(
                        "UPDATE devices SET vendor = coalesce(:v, vendor), "
                        "model = coalesce(:m, model), updated_at = now() WHERE id = :id"
                    ),
                    {"id": device_id, "v": info.get("manufacturer"), "m": info.get("model")},
                )
            conn.execute(
                text(
                    "INSERT INTO gb_devices (device_id, firmware, info) VALUES "
                    "(:id, :fw, CAST(:info AS jsonb)) ON CONFLICT (device_id) DO UPDATE SET "
                    "firmware = coalesce(EXCLUDED.firmware, gb_devices.firmware), "
                    "info = coalesce(gb_devices.info, '{}'::jsonb) || EXCLUDED.info, "
                    "updated_at = now()"
                ),
                {"id": device_id, "fw": info.get("firmware"), "info": json.dumps(info)},
            )

    def save_catalog(self, parent: Known, items: list[CatalogItem]) -> dict:
        """Channels become devices under `parent` (registered or updated in one transaction);
        DEL retires them. Returns counts and the channels' ids with their status."""
        from geo.bulk import register_many

        regs, gb_rows, deleted = [], [], []
        for item in items:
            if item.device_id == parent.device_id or item.device_id[10:13] in NOT_DEVICES:
                continue
            if item.event == "DEL":
                deleted.append(item.device_id)
                continue
            lon, lat, crs = parent.lon, parent.lat, "wgs84"
            if item.position is not None:
                (lon, lat), crs = item.position, parent.crs
            if lon is None or lat is None:
                log.info("channel %s has no position and neither has its parent", item.device_id)
                continue
            reg = {
                "id": item.device_id,
                "lon": lon,
                "lat": lat,
                "crs": crs,
                "gb_edition": parent.edition,
                "heartbeat_s": parent.heartbeat_s,
            }
            if item.name:
                reg["name"] = item.name
            if item.manufacturer:
                reg["vendor"] = item.manufacturer
            if item.model:
                reg["model"] = item.model
            regs.append(reg)
            gb_rows.append(
                {
                    "id": item.device_id,
                    "parent": parent.device_id,
                    "crs": parent.crs,
                    "civil": item.civil_code,
                    "status": _status(item),
                    "edition": parent.edition,
                }
            )
        out: dict = {"registered": 0, "rejected": [], "deleted": 0}
        with self.engine.begin() as conn:
            if regs:
                res = register_many(
                    conn,
                    regs,
                    f"gb28181:{parent.device_id}",
                    skip_invalid=True,
                    reload_broker=False,
                    refresh_compliance=False,
                )
                out["registered"] = res["devices"]
                out["rejected"] = res["rejected"]
                bad = {r["id"] for r in res["rejected"]}
                gb_rows = [r for r in gb_rows if r["id"] not in bad]
            if gb_rows:
                conn.execute(
                    text(
                        "INSERT INTO gb_devices AS g (device_id, parent_id, crs, civil_code, "
                        "channel_status, edition, catalog_at) VALUES (:id, :parent, :crs, :civil, "
                        ":status, :edition, now()) ON CONFLICT (device_id) DO UPDATE SET "
                        "parent_id = EXCLUDED.parent_id, civil_code = EXCLUDED.civil_code, "
                        "channel_status = coalesce(EXCLUDED.channel_status, g.channel_status), "
                        "edition = EXCLUDED.edition, catalog_at = now(), updated_at = now()"
                    ),
                    gb_rows,
                )
            if deleted:
                res = conn.execute(
                    text(
                        "UPDATE devices SET retired_at = now(), updated_at = now() "
                        "WHERE id = ANY(:ids) AND retired_at IS NULL AND id IN "
                        "(SELECT device_id FROM gb_devices WHERE parent_id = :parent)"
                    ),
                    {"ids": deleted, "parent": parent.device_id},
                )
                out["deleted"] = res.rowcount
            conn.execute(
                text("UPDATE gb_devices SET catalog_at = now() WHERE device_id = :id"),
                {"id": parent.device_id},
            )
        out["channels"] = [(r["id"], r["status"]) for r in gb_rows]
        out["deleted_ids"] = deleted
        return out

    def channels_of(self, parent_id: str) -> dict[str, Known]:
        with self.engine.connect() as conn:
            rows = conn.execute(text(_SELECT + " AND g.parent_id = :p"), {"p": parent_id})
            return {r.id: _known(r) for r in rows}


def add_pending(engine: Engine, device_id: str, topic: str, payload: bytes) -> bool:
    """An unknown id on the pending-devices list (the same rows and per-source cap as ingest's:
    a gateway's broker accounts may publish only for devices it fronts); False when its source
    is over the cap."""
    from ingest.config import get_ingest_settings
    from ingest.store import upsert_pending

    cap = get_ingest_settings().pending_max_per_source
    with engine.begin() as conn:
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        taken = upsert_pending(cur, {device_id: [1, topic, payload, None, None]}, cap)
    return device_id in taken


def _status(item: CatalogItem) -> str | None:
    if item.event in ("ON", "OFF"):
        return item.event
    if item.status in ("ON", "ONLINE"):
        return "ON"
    if item.status in ("OFF", "OFFLINE"):
        return "OFF"
    return None


def utc_now() -> datetime:
    return datetime.now(UTC)
