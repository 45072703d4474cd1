"""Real processes for end-to-end tests: the API under uvicorn and the ingest worker, on the test DB/broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from gridwatch.ports import free_local_port
from tests.support import stop_child, wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free port below the kernel's ephemeral range, so outgoing connections do not take it first."""
    return free_local_port()


class Proc:
    """A child process with its own log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log = Path(f"/tmp/gw-{name}-{uuid.uuid4().hex[:8]}.log")
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT
            )

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_child(self.proc)


class Stack:
    """`gridwatch serve` on a free port and `gridwatch ingest` with a unique client id and share group."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        env = dict(os.environ)
        env.update(
            GRIDWATCH_INGEST_CLIENT_ID=f"t-api-ingest-{tag}",
            GRIDWATCH_INGEST_SHARE_GROUP=f"tapi{tag}",  # other test runs share the broker
            GRIDWATCH_INGEST_BATCH_MS="20",
            GRIDWATCH_INGEST_SWEEP_S="0.5",
            GRIDWATCH_LOG_LEVEL="INFO",
        )
        self.env = env
        self.ingest = Proc("ingest", [sys.executable, "-m", "gridwatch", "ingest"], env)
        self.api = Proc(
            "api",
            [
                sys.executable,
                "-m",
                "gridwatch",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env,
        )

    retries = 0

    def wait_ready(self, timeout: float = 120.0) -> None:
        def healthy() -> bool:
            if not self.api.alive():
                if "address already in use" in self.api.tail() and self.retries < 3:
                    self.retries += 1  # someone took the port in between: another one
                    self.port = free_port()
                    self.base = f"http://127.0.0.1:{self.port}"
                    self.api = self._start_api()
                    return False
                raise RuntimeError(f"the API exited:\n{self.api.tail()}")
            try:
                return httpx.get(f"{self.base}/api/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_for(healthy, timeout, 0.2):
            raise RuntimeError(f"the API did not come up:\n{self.api.tail()}")
        if not wait_for(
            lambda: "subscribed to" in self.ingest.tail(100000) or not self.ingest.alive(),
            timeout,
            0.1,
        ):
            raise RuntimeError(f"the ingest worker did not subscribe:\n{self.ingest.tail()}")
        if not self.ingest.alive():
            raise RuntimeError(f"the ingest worker exited:\n{self.ingest.tail()}")

    def stop(self) -> None:
        self.api.stop()
        self.ingest.stop()

    def token(self, username: str, password: str) -> str:
        r = httpx.post(
            f"{self.base}/api/v1/auth/token",
            json={"username": username, "password": password},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["access_token"]


def mosquitto_pub(
    host: str,
    port: int,
    user: str,
    password: str,
    topic: str,
    payload: str,
    qos: int = 1,
    auth_wait_s: float = 20.0,
) -> None:
    """Publish one message with the mosquitto_pub client (as a device would).

    A device registered a moment ago may be refused until the broker has reloaded its password
    file (the registry rewrites it in the background after the commit), and test runs of several
    people share one broker but not one database: on "not authorised" re-assert this run's
    devices in the password file and retry, for up to auth_wait_s.
    """
    argv = ["mosquitto_pub", "-h", host, "-p", str(port), "-u", user, "-P", password]
    argv += ["-t", topic, "-q", str(qos), "-m", payload]
    deadline = time.monotonic() + auth_wait_s
    while True:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        if out.returncode == 0:
            return
        if "not authorised" not in out.stderr or time.monotonic() > deadline:
            raise RuntimeError(f"mosquitto_pub failed ({out.returncode}): {out.stderr.strip()}")
        reload_broker()
        time.sleep(0.3)


def reload_broker() -> None:
    """Rewrite the test broker's password file from this run's database and SIGHUP it."""
    from gridwatch.settings import get_settings
    from ingest.broker_acl import local_broker

    settings = get_settings()
    if settings.local_mqtt:
        local_broker(settings).reload()


@contextmanager
def running_stack() -> Iterator[Stack]:
    """A Stack once it answers; stopped after (also when it never got ready)."""
    s = Stack()
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()
