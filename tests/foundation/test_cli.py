"""The shell's CLI: doctor, services status, and external servers that start nothing local."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gridwatch.cli import app
from gridwatch.ports import free_local_port
from gridwatch.services import services_up
from gridwatch.settings import Settings, get_settings
from ingest.broker_acl import DynsecAccounts

runner = CliRunner()


def _free_port() -> int:
    return free_local_port()


def test_doctor_reports_every_check_as_json() -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert {"python packages", "postgis", "mosquitto", "map assets"} <= set(checks)
    assert checks["python packages"]["ok"]
    assert result.exit_code == (0 if all(c["ok"] for c in checks.values() if c["required"]) else 1)
    # what only the test suite needs never fails the doctor (./gw setup on a demo machine)
    assert not checks["chromium (browser tests)"]["required"]


def test_doctor_fails_on_unreachable_external_broker(monkeypatch) -> None:
    port = _free_port()
    monkeypatch.setenv("GRIDWATCH_MQTT_URL", f"mqtt://u:p@127.0.0.1:{port}")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["doctor", "--json"])
    finally:
        get_settings.cache_clear()
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert result.exit_code == 1
    assert not checks["mqtt broker"]["ok"]
    assert "unreachable" in checks["mqtt broker"]["detail"]


def test_external_urls_start_nothing_local(tmp_path, mqtt_broker, db_url) -> None:
    host, port = mqtt_broker.host, mqtt_broker.port
    settings = Settings(
        home=tmp_path,
        database_url=db_url.replace("postgresql+psycopg://", "postgresql://"),
        mqtt_url=f"mqtt://{mqtt_broker.user}:{mqtt_broker.password}@{host}:{port}",
    )
    statuses = {s.name: s for s in services_up(settings, DynsecAccounts(settings))}
    assert statuses["postgis"].running and not statuses["postgis"].managed
    assert statuses["mosquitto"].running and not statuses["mosquitto"].managed
    assert not (tmp_path / "pg").exists() and not (tmp_path / "mqtt").exists()
    assert settings.hub_credentials() == (mqtt_broker.user, mqtt_broker.password)


def test_services_status_exit_code_follows_reachability(services) -> None:
    result = runner.invoke(app, ["services", "status", "--json"])
    statuses = json.loads(result.stdout)
    assert {s["name"] for s in statuses} == {"postgis", "mosquitto"}
    assert result.exit_code == 0 and all(s["running"] for s in statuses)
