"""Hubs for federation tests: each its own PostGIS cluster (and broker) on free ports and home."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from federation.replication import libpq_url

ENV = ("GRIDWATCH_HOME", "GRIDWATCH_PG_PORT", "GRIDWATCH_MQTT_PORT", "GRIDWATCH_DB_NAME")


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

    @contextmanager
    def current(self) -> Iterator[None]:
        """This hub's GRIDWATCH_* for code that reads the process's settings (the CLI, migrate)."""
        from gridwatch.settings import get_settings

        saved = {k: os.environ.get(k) for k in ENV}
        os.environ.update(
            GRIDWATCH_HOME=str(self.home),
            GRIDWATCH_PG_PORT=str(self.settings.pg_port),
            GRIDWATCH_MQTT_PORT=str(self.settings.mqtt_port),
            GRIDWATCH_DB_NAME="gridwatch",
        )
        get_settings.cache_clear()
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            get_settings.cache_clear()

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
    """Poll until check() returns something true; its last value (a failed test shows it)."""
    deadline = time.monotonic() + timeout
    got = check()
    while not got and time.monotonic() < deadline:
        time.sleep(every)
        got = check()
    return got
