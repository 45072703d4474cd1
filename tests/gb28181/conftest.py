"""Fixtures for the GB/T 28181 gateway: the gateway as a process on a free port, registered
devices, and the ingest worker that turns the gateway's MQTT into database rows."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hardware.gbid import compose
from tests.ingest.conftest import hub_client, pg, start_worker  # noqa: F401 - shared fixtures
from tests.support import LoggedChild, wait_for

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "gb-test-password"
DOMAIN = "3601210000"
_serials = itertools.count(random.randrange(1, 400_000))


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1, outside the ephemeral range: a port drawn
    by binding port 0 can be taken by any outgoing connection before the gateway binds it (seen:
    the gateway's TCP listener refused with "address already in use")."""
    from gridwatch.ports import free_local_port

    while True:
        port = free_local_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def new_id(type_code: int = 132) -> str:
    return compose("360121", type_code, next(_serials)).code


class GatewayProcess(LoggedChild):
    """`python -m gridwatch gb28181` on its own port, inheriting the test environment."""

    def __init__(
        self,
        port: int | None = None,
        password: str | None = PASSWORD,
        sip_id: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.env = dict(os.environ)
        self.env.update(
            GRIDWATCH_SIP_HOST="127.0.0.1",
            GRIDWATCH_SIP_PORT=str(self.port),
            GRIDWATCH_SIP_DOMAIN=DOMAIN,
            GRIDWATCH_LOG_LEVEL="INFO",
        )
        if password is not None:
            self.env["GRIDWATCH_SIP_PASSWORD"] = password
        if sip_id is not None:  # another gateway: its own name and broker accounts
            self.env["GRIDWATCH_SIP_ID"] = sip_id
        self.env.update(env or {})  # e.g. another hub's database (GRIDWATCH_DB_NAME)
        self.log = Path(f"/tmp/gw-gb28181-test-{uuid.uuid4().hex[:8]}.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> GatewayProcess:
        logf = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gridwatch", "gb28181"],
            env=self.env,
            cwd=ROOT,
            stdout=logf,
            stderr=logf,
        )
        ok = wait_for(lambda: "gb28181 gateway" in self.text() or self.proc.poll() is not None, 120)
        assert ok and self.proc.poll() is None, self.text()[-3000:]
        return self


@pytest.fixture()
def gateway(services, db_url) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(**kwargs) -> GatewayProcess:
        gw = GatewayProcess(**kwargs)
        started.append(gw)  # stopped at the end even when it never came up
        return gw.start()

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture()
def register(engine) -> Callable[..., str]:
    """Register a device the way an installer does (geo.bulk), committed; its id."""
    from geo.bulk import register_many

    def make(type_code: int = 118, lon: float = 115.9, lat: float = 28.68, **fields) -> str:
        device_id = fields.pop("device_id", None) or new_id(type_code)
        with engine.begin() as conn:
            register_many(
                conn,
                [{"id": device_id, "lon": lon, "lat": lat, **fields}],
                "test",
                reload_broker=False,
                refresh_compliance=False,
            )
        return device_id

    return make


def run(coro):
    """Run a coroutine to completion (tests drive the simulated devices with asyncio)."""
    return asyncio.run(coro)
