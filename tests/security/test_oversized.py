"""A payload over 1 MiB from a device becomes a dead letter, not a disconnect and resend loop."""

from __future__ import annotations

import psycopg
import pytest

from gridwatch.settings import get_settings
from ingest.broker_acl import current_device_password
from tests.ingest.conftest import mqtt_client, wait_for

pytestmark = pytest.mark.integration


def test_oversized_alarm_is_dead_lettered(start_worker, make_device, db_url) -> None:
    if not get_settings().local_mqtt:
        pytest.skip("needs the project-local Mosquitto's limits")
    from ingest.broker_acl import local_broker

    d = make_device("alarm_input")
    local_broker(get_settings()).reload()
    start_worker(shared=False)
    broker = type("B", (), {})()
    broker.host, broker.port = get_settings().mqtt_endpoint()
    client, rc = mqtt_client(broker, d, current_device_password(d))
    assert rc is not None and not rc.is_failure
    disconnects: list = []
    client.on_disconnect = lambda *a: disconnects.append(a)
    big = b'{"kind": "intrusion", "pad": "' + b"x" * (1_200_000) + b'"}'
    info = client.publish(f"gw/v1/{d}/alarm", big, qos=1)
    info.wait_for_publish(20)
    assert info.is_published() and not disconnects
    url = db_url.replace("postgresql+psycopg://", "postgresql://")

    def stored() -> tuple | None:
        with psycopg.connect(url) as conn:
            return conn.execute(
                "SELECT reason, length(payload) FROM dead_letters WHERE topic = %s",
                (f"gw/v1/{d}/alarm",),
            ).fetchone()

    row = wait_for(stored, timeout=30)
    assert row is not None and row[0].startswith("too large")
    assert row[1] == get_settings().max_payload_bytes  # raw bytes kept, truncated
    client.disconnect()
    client.loop_stop()
