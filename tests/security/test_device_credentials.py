"""Per-device secrets: reset draws a new password (shown once), the old one stops working, and
the API's token key has nothing to do with them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gridwatch.cli import app
from gridwatch.settings import get_settings
from hardware.credentials import device_password
from tests.ingest.conftest import mqtt_client

pytestmark = pytest.mark.integration
runner = CliRunner()


def _rc(broker, user: str, password: str):
    client, rc = mqtt_client(broker, user, password)
    client.disconnect()
    client.loop_stop()
    return rc


def test_reset_shows_a_new_password_once_and_revokes_the_old(make_device, mqtt_broker) -> None:
    settings = get_settings()
    if not settings.local_mqtt:
        pytest.skip("needs the project-local Mosquitto")
    from ingest.broker_acl import current_device_password, local_broker

    d = make_device("alarm_input")
    local_broker(settings).reload()
    old = current_device_password(d)
    assert not _rc(mqtt_broker, d, old).is_failure
    # the API's token key derives nothing: the README's old default key gives no password
    assert _rc(mqtt_broker, d, device_password(d, settings.secret_key)).is_failure
    shown = runner.invoke(app, ["devices", "credentials", d, "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["password"] is None
    res = runner.invoke(app, ["devices", "credentials", d, "--reset", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    host, port = settings.mqtt_endpoint()
    assert out["username"] == d and out["broker_url"] == f"mqtt://{host}:{port}"
    assert out["password"] != old and len(out["password"]) == 24
    assert not _rc(mqtt_broker, d, out["password"]).is_failure
    assert _rc(mqtt_broker, d, old).is_failure
    # a second reset again changes it
    again = json.loads(
        runner.invoke(app, ["devices", "credentials", d, "--reset", "--json"]).stdout
    )
    assert again["password"] != out["password"]
    assert _rc(mqtt_broker, d, out["password"]).is_failure


def test_reset_of_an_unknown_device_fails_with_a_reason(services) -> None:
    res = runner.invoke(app, ["devices", "credentials", "36012100001349999999", "--reset"])
    assert res.exit_code == 1 and "not registered" in res.output
