"""Hubs for federation tests: each its own PostGIS cluster (and broker) on free ports and home."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from federation.replication import JoinPlan, libpq_url
from tests import support


@dataclass
class Hub:
    """One hub on this machine: its settings, a started PostGIS and a migrated database."""

    name: str
    home: Path
    settings: Any

    @classmethod
    def start(cls, name: str, home: Path) -> Hub:
        from gridwatch.db import migrate
        from gridwatch.ports import free_local_port
        from gridwatch.services import LocalPostgres
        from gridwatch.settings import Settings

        settings = Settings(
            home=home, pg_port=free_local_port(), mqtt_port=free_local_port(), db_name="gridwatch"
        )
        LocalPostgres(settings).start()
        hub = cls(name, home, settings)
        with hub.current():
            migrate(settings.db_url())
        return hub

    @classmethod
    def start_all(cls, homes: dict[str, Path]) -> dict[str, Hub]:
        """Several hubs at once: their clusters started and migrated side by side (each
        migration a process of its own with the hub's GRIDWATCH_*), as Hub.start one by one."""
        import subprocess
        import sys
        from concurrent.futures import ThreadPoolExecutor

        from gridwatch.ports import free_local_port
        from gridwatch.services import LocalPostgres
        from gridwatch.settings import Settings

        hubs = {
            name: cls(
                name,
                home,
                Settings(
                    home=home,
                    pg_port=free_local_port(),
                    mqtt_port=free_local_port(),
                    db_name="gridwatch",
                ),
            )
            for name, home in homes.items()
        }
        code = "from gridwatch.db import migrate; from gridwatch.settings import get_settings; "
        code += "migrate(get_settings().db_url())"

        def up(hub: Hub) -> None:
            LocalPostgres(hub.settings).start()
            subprocess.run(
                [sys.executable, "-c", code], env={**os.environ, **hub.env()}, check=True
            )

        with ThreadPoolExecutor(len(hubs)) as pool:
            futures = [pool.submit(up, hub) for hub in hubs.values()]
        if any(f.exception() for f in futures):
            for hub in hubs.values():
                hub.stop()
            raise next(e for f in futures if (e := f.exception()))
        return hubs

    def env(self) -> dict[str, str]:
        """The GRIDWATCH_* that make a process (a worker, the CLI) this hub's."""
        return {
            "GRIDWATCH_HOME": str(self.home),
            "GRIDWATCH_PG_PORT": str(self.settings.pg_port),
            "GRIDWATCH_MQTT_PORT": str(self.settings.mqtt_port),
            "GRIDWATCH_DB_NAME": "gridwatch",
        }

    def current(self) -> AbstractContextManager[None]:
        """This hub's GRIDWATCH_* for code that reads the process's settings (the CLI, migrate)."""
        return support.settings_env(self.env())

    @property
    def url(self) -> str:
        """The hub's database as its superuser (federation's set-up needs one)."""
        return self.settings.db_url(role="admin")

    def sql(self, query: str, params: Any = None) -> list[tuple]:
        """Run one statement in its own transaction; the rows it returns, if any."""
        with psycopg.connect(libpq_url(self.url), autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        from gridwatch.db import get_engine
        from gridwatch.services import LocalMosquitto, LocalPostgres

        get_engine(url=self.url).dispose()
        LocalMosquitto(self.settings).stop()
        LocalPostgres(self.settings).stop(mode="immediate")


def wait_for(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
    """tests.support.wait_for with the longer patience replication needs."""
    return support.wait_for(check, timeout, every)


SNAPSHOT = {
    "devices": "SELECT origin, id, status FROM devices",
    "device_presence": "SELECT origin, id, device_id, ended_at IS NULL FROM device_presence",
    "alarms": "SELECT origin, id, msg_id, state, acknowledged_by FROM alarms",
    "alarm_events": "SELECT origin, id, alarm_id, state FROM alarm_events",
    "alarm_cameras": "SELECT origin, alarm_id, device_id FROM alarm_cameras",
    "camera_health": "SELECT origin, id, device_id FROM camera_health",
    # the county publishes its own scope only (level 3 down), not its parent city
    "regions": "SELECT origin, code FROM regions WHERE level >= 3",
}


def rows(hub: Hub, origin: str) -> dict[str, list[tuple]]:
    """Every federated table's rows of one origin, sorted (a duplicate would show twice)."""
    return {
        table: sorted(hub.sql(f"SELECT * FROM ({q}) t WHERE origin = %s", (origin,)))
        for table, q in SNAPSHOT.items()
    }


def in_sync(city: Hub, county: Hub, origin: str) -> bool:
    return rows(city, origin) == rows(county, origin)


def diff(city: Hub, county: Hub, origin: str) -> dict[str, tuple[list, list]]:
    """Per table, (rows only at the city, rows only at the county)."""
    up, down = rows(city, origin), rows(county, origin)
    return {
        t: ([r for r in up[t] if r not in down[t]], [r for r in down[t] if r not in up[t]])
        for t in up
        if up[t] != down[t]
    }


def plan(county: Hub, city: Hub, hub_id: str, scope: str) -> JoinPlan:
    from gridwatch.secrets import load_secrets

    return JoinPlan(
        hub_id=hub_id,
        scope=scope,
        upstream_url=city.url,
        local_url=county.url,
        advertise_host="127.0.0.1",
        advertise_port=county.settings.pg_port,
        repl_password=load_secrets(county.home)["fed_repl_password"],
    )
