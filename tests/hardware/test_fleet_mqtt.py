"""The fleet over the real broker: nothing lost against its ledger, per-device credentials, Wills."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from gridwatch.ports import free_local_port
from gridwatch.secrets import device_key
from gridwatch.settings import Settings
from simulators.fleet import Fleet
from simulators.fleet_model import FleetDevice, FleetOptions, synthesize_fleet
from simulators.fleet_transport import PerDeviceLinks

# A region of their own, so other tests' devices on the same broker are not counted here.
POOLED_REGION, PER_DEVICE_REGION = "65010201", "65010202"


class Recorder:
    """A hub-credential subscriber that counts live (non-retained) messages of chosen devices."""

    def __init__(self, broker, ids: set[str]) -> None:
        self.ids = ids
        self.counts: Counter[str] = Counter()
        self.states: Counter[str] = Counter()
        self.alarm_ids: set[str] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"fleet-rec-{time.time_ns()}"
        )
        self.client.username_pw_set(broker.user, broker.password)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("gw/v1/+/+", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10), "the recorder could not subscribe"

    def _on_message(self, client, userdata, msg) -> None:
        _, _, device_id, suffix = msg.topic.split("/")
        if device_id not in self.ids or msg.retain:
            return
        with self.lock:
            self.counts[suffix] += 1
            if suffix == "alarm":
                self.alarm_ids.add(json.loads(msg.payload)["msg_id"])
            elif suffix == "state":
                self.states[msg.payload.decode()] += 1

    def settle(self, expected_total: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and sum(self.counts.values()) < expected_total:
            time.sleep(0.05)
        time.sleep(0.3)  # anything extra (duplicates) would arrive now

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_pooled_fleet_delivers_exactly_its_ledger(mqtt_broker) -> None:
    devices = synthesize_fleet(80, region=POOLED_REGION, seed=21)
    rec = Recorder(mqtt_broker, {d.id for d in devices})
    opts = FleetOptions(
        seed=21, speed=300, duration_s=1800, alarm_rate_scale=100, snapshot_s=300, run_tag="tp"
    )
    fleet = Fleet(
        devices,
        opts,
        mqtt_broker.host,
        mqtt_broker.port,
        hub=(mqtt_broker.user, mqtt_broker.password),
        connections=3,
    )
    summary = fleet.run(drain_s=15)
    rec.settle(summary.sent_total)
    rec.close()
    ledger = fleet.ledger
    assert summary.mode == "pooled" and summary.connections == 3
    assert {"heartbeat", "alarm", "position", "snapshot", "state"} <= set(ledger.sent)
    assert dict(rec.counts) == dict(ledger.sent), (dict(rec.states), dict(ledger.states))
    assert rec.alarm_ids == ledger.alarm_ids and len(ledger.alarm_ids) > 5
    assert ledger.acked_alarm_ids == ledger.alarm_ids
    assert summary.alarms_sent == len(ledger.alarm_ids)


def _register(engine, devices: list[FleetDevice]) -> None:
    with engine.begin() as conn:
        for d in devices:
            conn.execute(
                text(
                    "INSERT INTO devices (id, type_code, kind, sub_kind, position) VALUES "
                    "(:id, :tc, :kind, :sub, ST_SetSRID(ST_Point(:lon, :lat), 4326)) "
                    "ON CONFLICT (id) DO UPDATE SET retired_at = NULL"
                ),
                {
                    "id": d.id,
                    "tc": d.id[10:13],
                    "kind": d.kind,
                    "sub": d.sub_kind,
                    "lon": d.lon,
                    "lat": d.lat,
                },
            )


class PrivateBroker(NamedTuple):
    """Same fields as the conftest Broker (not imported: conftest sets up env on import)."""

    host: str
    port: int
    user: str
    password: str


def _free_port() -> int:
    return free_local_port()


@pytest.fixture(scope="module")
def device_broker(engine, services) -> Iterator[tuple[PrivateBroker, list[FleetDevice], Settings]]:
    """Cameras registered in the database and a broker holding their credentials.

    The project's own Mosquitto set-up (gridwatch.services.LocalMosquitto: config, password file
    and ACL from ingest.broker_acl, read from this run's database), started in a directory of
    its own: the shared test broker's password file is rewritten from *their* databases whenever
    a concurrent test run reloads it, which would lock these devices out mid-test.
    """
    from gridwatch.settings import get_settings
    from ingest.broker_acl import local_broker

    base = get_settings()
    if not base.local_mqtt:
        pytest.skip("per-device credentials need a project-local broker (GRIDWATCH_MQTT_URL set)")
    home = Path(tempfile.mkdtemp(prefix="gw-fleet-"))
    settings = base.model_copy(update={"home": home, "mqtt_port": _free_port()})
    # the same database (its password) and device key as the run's own home
    shutil.copy(base.home / "secrets.json", home / "secrets.json")
    devices = synthesize_fleet(16, region=PER_DEVICE_REGION, seed=22, mix={"ip_camera": 1.0})
    _register(engine, devices)
    broker = local_broker(settings)
    broker.start()
    from tests.conftest import observer_account

    user, password = observer_account(settings)
    try:
        yield PrivateBroker("127.0.0.1", settings.mqtt_port, user, password), devices, settings
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_per_device_links_flap_with_wills_and_lose_nothing(device_broker) -> None:
    broker, registered, settings = device_broker
    rec = Recorder(broker, {d.id for d in registered})
    opts = FleetOptions(
        seed=22,
        speed=100,
        duration_s=900,
        flapping_fraction=0.5,
        snapshot_fraction=0.0,
        run_tag="tw",
    )
    fleet = Fleet(
        registered,
        opts,
        broker.host,
        broker.port,
        secret=device_key(settings),
    )
    summary = fleet.run(drain_s=15)
    ledger = fleet.ledger
    wills = summary.wills_triggered
    rec.settle(summary.sent_total + wills)
    rec.close()
    assert summary.mode == "per-device" and not summary.connect_failures
    assert summary.outages > 0 and wills == summary.outages
    # every abrupt drop made the broker publish the device's Will: retained "offline"
    assert rec.states["offline"] == ledger.states["offline"] + wills
    # each device announced itself on connecting, and again after every outage it came back from
    assert rec.states["online"] == ledger.states["online"] >= len(registered)
    assert rec.counts["heartbeat"] == ledger.sent["heartbeat"] > 0
    assert rec.counts["state"] == ledger.sent["state"] + wills


def test_per_device_credentials_are_what_the_broker_checks(device_broker) -> None:
    broker, registered, settings = device_broker
    ids = [d.id for d in registered[:3]]
    good = PerDeviceLinks(broker.host, broker.port, device_key(settings), ids)
    good.start(timeout_s=10)
    assert good.pool.stats.connects == 3 and not good.pool.stats.connect_failures
    good.pool.close()
    bad = PerDeviceLinks(broker.host, broker.port, "not-the-key", ids)
    bad.start(timeout_s=10)
    assert sum(bad.pool.stats.connect_failures.values()) == 3
    assert bad.pool.stats.connects == 0
    bad.pool.close()


def test_simulate_command_prints_a_json_summary(mqtt_broker) -> None:
    import typer

    from simulators.cli import register

    app = typer.Typer()
    app.command("noop")(lambda: None)
    register(app)
    out = CliRunner().invoke(
        app,
        [
            "simulate",
            "--devices",
            "30",
            "--region",
            "65010203",
            "--speed",
            "200",
            "--duration",
            "600",
            "--connections",
            "2",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["devices"] == 30 and summary["sent"]["heartbeat"] > 0
    assert summary["mode"] == "pooled" and summary["simulated_s"] == 600


def test_devices_reconnect_after_a_broker_restart(device_broker) -> None:
    from ingest.broker_acl import local_broker

    broker, registered, settings = device_broker
    opts = FleetOptions(
        seed=23,
        speed=100,
        duration_s=1500,
        flapping_fraction=0.0,
        unreliable_fraction=0.0,
        snapshot_fraction=0.0,
        run_tag="tr",
    )
    fleet = Fleet(registered, opts, broker.host, broker.port, secret=device_key(settings))
    result: dict = {}
    runner = threading.Thread(target=lambda: result.setdefault("s", fleet.run(drain_s=15)))
    runner.start()
    time.sleep(4)
    sent_before = fleet.ledger.sent["heartbeat"]
    local_broker(settings).restart()
    runner.join(60)
    summary = result["s"]
    n = len(registered)
    assert summary.reconnects >= n  # every device came back on its own
    assert fleet.ledger.states["online"] >= 2 * n  # and announced itself again
    assert fleet.ledger.sent["heartbeat"] > sent_before + n  # and kept on heartbeating
