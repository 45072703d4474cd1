"""The broker's TLS listener for devices: certificate from the hub's CA, plain MQTT refused on it,
loopback stays plain, and devices are told the mqtts:// address."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gridwatch.ports import free_local_port
from gridwatch.services import ServiceError
from gridwatch.settings import Settings
from ingest.broker_acl import local_broker


def _free_port() -> int:
    return free_local_port()


def _connect(port: int, user: str, password: str, ca: Path | None) -> mqtt.ReasonCode | str:
    """Connect once; the CONNACK reason, or the error that stopped the connection."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"tls-{port}-{ca is None}")
    client.username_pw_set(user, password)
    if ca is not None:
        client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    done = threading.Event()
    result: list[mqtt.ReasonCode | str] = []

    def on_connect(_c, _u, _f, reason, _p=None) -> None:
        result.append(reason)
        done.set()

    client.on_connect = on_connect
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return f"{type(exc).__name__}: {exc}"
    client.loop_start()
    done.wait(5)
    client.loop_stop()
    client.disconnect()
    return result[0] if result else "no CONNACK"


def test_tls_listener_serves_devices_with_the_hub_certificate(own_services_home) -> None:
    plain, tls = _free_port(), _free_port()
    settings = Settings(
        home=own_services_home,
        mqtt_port=plain,
        mqtt_tls_port=tls,
        mqtt_tls_host="127.0.0.1",
        tls="local",
        pg_port=1,  # no database: the broker's accounts are the hub's own
        public_url="https://hub.lan:8470",
    )
    broker = local_broker(settings)
    broker.start()
    try:
        ca = own_services_home / "tls" / "ca.crt"
        assert ca.is_file()
        user, password = settings.hub_credentials("simulator")
        reason = _connect(tls, user, password, ca)
        assert isinstance(reason, mqtt.ReasonCode) and not reason.is_failure, reason
        # A wrong password over TLS is refused like on loopback.
        refused = _connect(tls, user, "wrong", ca)
        assert not isinstance(refused, mqtt.ReasonCode) or refused.is_failure, refused
        # Plain MQTT on the TLS port gets no CONNACK.
        cleartext = _connect(tls, user, password, None)
        assert isinstance(cleartext, str), cleartext
        # Loopback stays plain MQTT for the hub's own workers.
        reason = _connect(plain, user, password, None)
        assert isinstance(reason, mqtt.ReasonCode) and not reason.is_failure, reason
        # Devices are told the TLS address at the public host.
        assert settings.mqtt_public_endpoint() == ("mqtts", "hub.lan", tls)
    finally:
        broker.stop()


def test_tls_listener_without_a_certificate_says_what_to_set(own_services_home) -> None:
    settings = Settings(
        home=own_services_home, mqtt_port=_free_port(), mqtt_tls_port=_free_port(), pg_port=1
    )
    with pytest.raises(ServiceError, match="GRIDWATCH_TLS=local"):
        local_broker(settings).start()
