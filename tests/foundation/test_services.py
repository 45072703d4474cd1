"""The local services and the schema: real PostGIS, real Mosquitto, and their failure messages."""

from __future__ import annotations

import socket
import threading

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import text

from gridwatch.services import LocalMosquitto, LocalPostgres, ServiceError
from gridwatch.settings import Settings
from ingest.broker_acl import local_broker


def test_schema_has_postgis_and_gist_indexes(engine) -> None:
    with engine.connect() as conn:
        version = conn.execute(text("SELECT postgis_version()")).scalar()
        assert version and version.startswith("3")
        tables = {
            r[0]
            for r in conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        }
        for name in (
            "regions",
            "grids",
            "grid_workers",
            "key_sites",
            "devices",
            "alarms",
            "dead_letters",
            "pending_devices",
            "users",
            "audit_log",
        ):
            assert name in tables
        gist = {
            r[0]
            for r in conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE indexdef ILIKE '%USING gist%'")
            )
        }
        assert {"regions_geom_gix", "grids_geom_gix", "devices_position_gix"} <= gist
        srid = conn.execute(text("SELECT Find_SRID('public', 'devices', 'position')")).scalar()
        assert srid == 4326


def test_device_id_must_be_twenty_digits(engine) -> None:
    with engine.connect() as conn, pytest.raises(Exception, match="devices_id_check"):
        conn.execute(
            text("INSERT INTO devices (id, type_code, kind) VALUES ('123', '132', 'ip_camera')")
        )


def _connect(broker, user: str | None, password: str | None) -> mqtt.ReasonCode | int:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user:
        client.username_pw_set(user, password)
    done = threading.Event()
    result: dict = {}

    def on_connect(_c, _u, _f, reason_code, _p=None):
        result["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    done.wait(5)
    client.disconnect()
    client.loop_stop()
    return result.get("rc")


def test_broker_refuses_anonymous_and_accepts_hub(mqtt_broker) -> None:
    assert not _connect(mqtt_broker, None, None) == 0
    assert _connect(mqtt_broker, mqtt_broker.user, "wrong-password").is_failure
    assert _connect(mqtt_broker, mqtt_broker.user, mqtt_broker.password) == 0


def test_port_in_use_is_reported_not_clobbered(tmp_path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        settings = Settings(home=tmp_path, mqtt_port=port)
        with pytest.raises(ServiceError, match=f"port {port} is already in use"):
            local_broker(settings).start()
    finally:
        sock.close()


def test_data_directory_of_other_version_left_untouched(tmp_path) -> None:
    settings = Settings(home=tmp_path, pg_port=1)
    pg = LocalPostgres(settings)
    pg.data.mkdir(parents=True)
    (pg.data / "PG_VERSION").write_text("9\n")
    (pg.data / "precious").write_text("data")
    with pytest.raises(ServiceError, match="PostgreSQL 9 cluster"):
        pg.start()
    assert (pg.data / "precious").read_text() == "data"


def test_concurrent_starts_leave_one_broker_and_its_pid_file(own_services_home) -> None:
    tmp_path = own_services_home
    import os
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "GRIDWATCH_HOME": str(tmp_path),
        "GRIDWATCH_MQTT_PORT": str(port),
        "GRIDWATCH_PG_PORT": "1",  # no database: the broker files then hold the hub only
    }
    code = "from ingest.broker_acl import local_broker; local_broker().start()"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    broker = local_broker(Settings(home=tmp_path, mqtt_port=port))
    try:
        assert broker.running(), "the PID file must name the live broker"
        found = subprocess.run(
            ["pgrep", "-f", str(broker.conf)], capture_output=True, text=True
        ).stdout.split()
        assert len(found) == 1
    finally:
        broker.stop()
    assert not broker.running()


def test_lost_pid_file_is_found_again(own_services_home, monkeypatch) -> None:
    """A broker whose PID file was deleted is still seen, reloaded and stopped."""
    tmp_path = own_services_home
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("GRIDWATCH_PG_PORT", "1")  # no database: the broker files hold the hub only
    broker = local_broker(Settings(home=tmp_path, mqtt_port=port, pg_port=1))
    broker.start()
    try:
        pid = int(broker.pidfile.read_text())
        broker.pidfile.unlink()
        assert broker.running()
        assert int(broker.pidfile.read_text()) == pid
        broker.pidfile.unlink()
        broker.reload()  # no database to sync from: the broker keeps running as it was
        assert broker.running() and broker.pid() == pid
        broker.pidfile.unlink()
    finally:
        broker.stop()
    assert not broker.running()


def test_a_broker_without_its_accounts_is_not_started(tmp_path) -> None:
    """The core runs Mosquitto but its accounts come from their owner (ingest.broker_acl): a
    broker made without them says how to make one, and writes nothing."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    broker = LocalMosquitto(Settings(home=tmp_path, mqtt_port=port))
    with pytest.raises(ServiceError, match=r"ingest\.broker_acl\.local_broker"):
        broker.start()
    with pytest.raises(ServiceError, match="without its accounts"):
        broker.write_config()
    assert not broker.conf.exists() and not broker.dynsec.exists() and not broker.running()
