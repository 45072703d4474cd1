"""Fixtures for ingest tests: a psycopg connection, unique test devices, a batch store."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator

import psycopg
import pytest

from hardware.gbid import compose
from ingest.config import IngestSettings

_serials = itertools.count(random.randrange(1, 400_000))

TYPE_CODES = {
    "ip_camera": 132,
    "alarm_input": 134,
    "smoke_detector": 134,
    "patrol_car": 138,
    "mobile": 138,
    "livestock_collar": 139,
}


def new_device_id(kind: str = "ip_camera", region: str = "360121") -> str:
    """A fresh, valid 20-digit id (unique within this test run)."""
    return compose(region, TYPE_CODES[kind], next(_serials)).code


@pytest.fixture()
def pg(db_url: str) -> Iterator[psycopg.Connection]:
    """A psycopg 3 connection on the test database (the test commits what it wants kept)."""
    conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
    yield conn
    conn.rollback()
    conn.close()


@pytest.fixture()
def make_device(pg: psycopg.Connection) -> Callable[..., str]:
    """Insert a registered device directly (committed) and return its id."""

    def make(
        kind: str = "ip_camera",
        lon: float | None = 115.9,
        lat: float | None = 28.68,
        *,
        fov_wkt: str | None = None,
        heartbeat_s: int = 60,
        region_code: str | None = None,
        device_id: str | None = None,
    ) -> str:
        device_id = device_id or new_device_id(kind)
        pg.execute(
            "INSERT INTO devices (id, type_code, kind, position, fov, heartbeat_s, region_code) "
            "VALUES (%s, %s, %s, CASE WHEN %s::float8 IS NULL THEN NULL ELSE "
            "ST_SetSRID(ST_MakePoint(%s, %s), 4326) END, ST_GeomFromText(%s, 4326), %s, %s)",
            (
                device_id,
                device_id[10:13],
                kind,
                lon,
                lon,
                lat,
                fov_wkt,
                heartbeat_s,
                region_code,
            ),
        )
        pg.commit()
        return device_id

    return make


@pytest.fixture()
def cfg() -> IngestSettings:
    return IngestSettings(share_group="", client_id="test-ingest")


@pytest.fixture()
def store(db_url: str, cfg: IngestSettings) -> Iterator:
    """A BatchStore on its own connection (what the worker uses per batch)."""
    from ingest.store import BatchStore

    conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
    yield BatchStore(conn, cfg, max_payload=4096)
    conn.close()


# ---------------------------------------------------------------- MQTT and worker helpers
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from tests.support import LoggedChild, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class Collector:
    """A connected paho client that records what it receives."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        client.on_message = self._on_message

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def topics(self) -> list[str]:
        with self.lock:
            return [t for t, _ in self.messages]


def mqtt_client(
    broker, user: str | None = None, password: str | None = None, client_id: str = ""
) -> tuple[mqtt.Client, object]:
    """A connected MQTT v5 client (loop running) and its CONNACK reason code."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if user is not None:
        client.username_pw_set(user, password)
    result: dict = {}
    done = threading.Event()

    def on_connect(c, u, flags, rc, props):
        result["rc"] = rc
        done.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    done.wait(10)
    return client, result.get("rc")


@pytest.fixture()
def hub_client(mqtt_broker):
    client, rc = mqtt_client(mqtt_broker, mqtt_broker.user, mqtt_broker.password)
    assert rc is not None and not rc.is_failure, f"hub could not connect: {rc}"
    yield client
    client.disconnect()
    client.loop_stop()


class WorkerProcess(LoggedChild):
    """`python -m ingest` as a subprocess inheriting the test environment."""

    def __init__(self, client_id: str, share_group: str) -> None:
        self.env = dict(os.environ)
        self.env.update(
            GRIDWATCH_INGEST_CLIENT_ID=client_id,
            GRIDWATCH_INGEST_SHARE_GROUP=share_group,
            GRIDWATCH_INGEST_BATCH_MS="20",
            GRIDWATCH_INGEST_SWEEP_S="0.5",
            GRIDWATCH_INGEST_DB_RETRY_MAX_S="0.5",
            # the shared test broker must not keep queueing for finished tests' sessions
            GRIDWATCH_INGEST_SESSION_EXPIRY_S="120",
            GRIDWATCH_INGEST_DISCARD_SESSION_ON_EXIT="true",
            # fault tests stream hundreds of alarms/s through a handful of devices; the
            # per-device limits are tested on their own (tests/security/test_ingest_abuse.py)
            GRIDWATCH_INGEST_DEVICE_MSGS_PER_S="100000",
            GRIDWATCH_INGEST_DEVICE_ALARMS_PER_S="100000",
            GRIDWATCH_LOG_LEVEL="INFO",
        )
        self.log = Path(f"/tmp/gw-ingest-test-{client_id}-{uuid.uuid4().hex[:6]}.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        logf = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest"], env=self.env, cwd=ROOT, stdout=logf, stderr=logf
        )
        return self

    def connections(self) -> int:
        """How many times this worker's log says it (re)connected and subscribed."""
        return self.log.read_text(errors="replace").count("subscribed to")

    def wait_connected(self, times: int = 1, timeout: float = 20.0) -> bool:
        return bool(wait_for(lambda: self.connections() >= times, timeout))


@pytest.fixture()
def start_worker(services):
    """Start ingest workers with a unique client id and share group (other runs share the broker)."""
    started: list[WorkerProcess] = []
    tag = uuid.uuid4().hex[:8]

    def start(client_id: str | None = None, shared: bool = True) -> WorkerProcess:
        w = WorkerProcess(client_id or f"t-ingest-{tag}", f"t{tag}" if shared else "").start()
        started.append(w)
        assert w.wait_connected(), w.log.read_text(errors="replace")[-3000:]
        return w

    yield start
    for w in started:
        w.stop()


def restart_broker() -> None:
    """LocalMosquitto.restart() (the broker finds a lost PID file by itself)."""
    from gridwatch.settings import get_settings
    from ingest.broker_acl import local_broker

    settings = get_settings()
    if not settings.local_mqtt:
        pytest.skip("needs the project-local Mosquitto to restart it")
    local_broker(settings).restart()


def reload_broker() -> None:
    """The local broker's device clients brought in line with the database (bulk: a rebuild)."""
    from gridwatch.settings import get_settings
    from ingest.broker_acl import local_broker

    local_broker(get_settings()).reload()
