"""Broker provisioning driven by the registry's NOTIFY gw_broker events: one worker turns each
device change into dynamic-security commands (and reconciles everything when it starts)."""

from __future__ import annotations

import logging
import threading

import psycopg

from gridwatch.settings import Settings, get_settings
from ingest.broker_acl import BrokerAdminError, sync_devices
from ingest.dbconn import connect

log = logging.getLogger("gridwatch.provision")
PROVISION_LOCK = 0x67770003
CHANNEL = "gw_broker"  # geo.registry.BROKER_CHANNEL
ALL = "*"


def run_provisioner(stop: threading.Event, settings: Settings | None = None) -> None:
    """Until `stop`: hold the provisioning lock (one worker of many), LISTEN gw_broker, and
    apply each batch of changed device ids; a full reconcile on start and on '*'."""
    settings = settings or get_settings()
    if not settings.local_mqtt:
        log.info("external broker: its accounts are managed outside gridwatch")
        return
    while not stop.is_set():
        try:
            with connect(autocommit=True) as conn:
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", (PROVISION_LOCK,)).fetchone()
                if not got or not got[0]:
                    stop.wait(5.0)
                    continue
                conn.execute(f"LISTEN {CHANNEL}")
                sync_devices(settings=settings)  # whatever changed while no one listened
                log.info("provisioning broker clients from %s events", CHANNEL)
                while not stop.is_set():
                    ids = {n.payload for n in conn.notifies(timeout=0.5, stop_after=1000)}
                    if not ids:
                        continue
                    if ALL in ids:
                        sync_devices(settings=settings)
                    else:
                        sync_devices(ids, settings=settings)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            stop.wait(1.0)
        except BrokerAdminError as exc:
            log.warning("broker provisioning: %s; retrying", exc)
            stop.wait(1.0)
        except Exception:  # noqa: BLE001 - provisioning must never take the worker down
            log.exception("broker provisioning error")
            stop.wait(1.0)
