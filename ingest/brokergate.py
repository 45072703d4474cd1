"""Quarantine at the broker: a quarantined device's client is disabled in Mosquitto's dynamic
security (which also disconnects it) and enabled again when its quarantine ends, so a flooding
device costs the broker and the worker nothing while it lasts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gridwatch.settings import Settings
from ingest.broker_acl import is_device_username

log = logging.getLogger("gridwatch.brokergate")
TICK_S = 0.5


class BrokerGate:
    """Keeps the broker's disabled device clients equal to the worker's quarantined devices.

    `update({device: until})` (monotonic `until`) is cheap and never blocks the worker; a
    thread sends disableClient / enableClient through the hub's admin account. At start it
    enables every device client left disabled (a worker stopped mid-quarantine), and at stop
    it enables the ones it disabled."""

    def __init__(
        self,
        settings: Settings,
        admin_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._admin_factory = admin_factory
        self._want: dict[str, float] = {}
        self._disabled: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _admin(self) -> Any:
        if self._admin_factory is not None:
            return self._admin_factory()
        from ingest.broker_acl import DynsecAdmin

        return DynsecAdmin(self.settings, timeout=5.0)

    def start(self) -> BrokerGate:
        self._thread = threading.Thread(target=self._run, name="gw-brokergate", daemon=True)
        self._thread.start()
        return self

    def update(self, blocked: dict[str, float]) -> None:
        """The devices quarantined now and until when (monotonic seconds)."""
        self._want = {k: u for k, u in blocked.items() if is_device_username(k)}
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def disabled(self) -> set[str]:
        """Device clients this gate has disabled and not yet enabled."""
        return set(self._disabled)

    def _run(self) -> None:
        """One admin connection kept open (a quarantine starts without a new login), made
        again after any failure."""
        admin: Any = None
        first = True
        while True:
            stopping = self._stop.is_set()
            now = self.clock()
            want = set() if stopping else {k for k, u in self._want.items() if u > now}
            try:
                if admin is None:
                    admin = self._admin().__enter__()
                if first:
                    self._enable_leftovers(admin)
                    first = False
                if want != self._disabled:
                    self._apply(admin, want)
            except Exception as exc:  # noqa: BLE001 - the worker's own drop still applies
                log.warning("broker quarantine not applied (%s); retrying", exc)
                admin = self._close(admin)
                if not stopping:
                    self._stop.wait(2.0)
                    continue
            if stopping:
                self._close(admin)
                return
            self._wake.wait(TICK_S)
            self._wake.clear()

    @staticmethod
    def _close(admin: Any) -> None:
        if admin is not None:
            try:
                admin.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - it is being dropped anyway
                pass

    def _apply(self, admin: Any, want: set[str]) -> None:
        start = sorted(want - self._disabled)
        end = sorted(self._disabled - want)
        if start:
            admin.run(
                [{"command": "disableClient", "username": d} for d in start],
                ok_errors=("Client not found",),
            )
            self._disabled |= set(start)
            log.warning("broker: disabled flooding device(s) %s for their quarantine", start)
        if end:
            admin.run(
                [{"command": "enableClient", "username": d} for d in end],
                ok_errors=("Client not found",),
            )
            self._disabled -= set(end)
            log.info("broker: enabled device(s) %s again (quarantine over)", end)

    def _enable_leftovers(self, admin: Any) -> None:
        """Enable device clients a previous worker left disabled (device clients are only ever
        disabled by a quarantine: retired devices are deleted)."""
        got = admin.run([{"command": "listClients", "verbose": True, "count": -1, "offset": 0}])
        clients = got[0].get("data", {}).get("clients", [])
        left = [
            c["username"]
            for c in clients
            if isinstance(c, dict) and c.get("disabled") and is_device_username(c["username"])
        ]
        if left:
            admin.run(
                [{"command": "enableClient", "username": d} for d in left],
                ok_errors=("Client not found",),
            )
            log.info("broker: enabled %d device client(s) left disabled by a quarantine", len(left))
