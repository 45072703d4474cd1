"""End to end: simulated devices -> SIP gateway -> MQTT -> ingest -> PostGIS."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from simulators.sip_device import Channel, SimDevice, SimEndpoint
from tests.gb28181.conftest import DOMAIN, PASSWORD, new_id, run, wait_for


def q(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


async def until(check, timeout: float = 20.0):
    """Poll a blocking check off the loop (the simulated devices keep answering meanwhile)."""
    return await asyncio.to_thread(wait_for, check, timeout)


def test_register_keepalive_catalog_info_alarm_unregister(gateway, register, start_worker, engine):
    start_worker()
    gw = gateway()
    nvr = register(118, name="NVR 1")
    channels = [
        Channel(new_id(132), f"通道{i}", 115.9 + i * 0.001, 28.68, "ON" if i % 5 else "OFF")
        for i in range(45)
    ]
    dev = SimDevice(nvr, PASSWORD, channels=channels, catalog_chunk=10)

    async def scenario():
        ep = await SimEndpoint(("127.0.0.1", gw.port), DOMAIN).open()
        ep.add(dev)
        try:
            assert await ep.register(dev) == 200
            assert await ep.keepalive(dev) == 200
            stored = await until(
                lambda: (
                    q(engine, "SELECT count(*) FROM gb_devices WHERE parent_id = :p", p=nvr)[0][0]
                    == 45
                )
            )
            assert stored, dev.queries
            status = await ep.alarm(
                dev, source=channels[1].device_id, priority=1, method=5, alarm_type=6
            )
            assert status == 200
            assert await ep.register(dev, expires=0) == 200
        finally:
            ep.close()

    run(scenario())
    rows = q(
        engine,
        "SELECT d.name, g.civil_code FROM devices d JOIN gb_devices g ON g.device_id = d.id "
        "WHERE d.id = :i",
        i=channels[3].device_id,
    )
    assert rows == [("通道3", "360121")]
    assert wait_for(
        lambda: (
            q(engine, "SELECT vendor, model FROM devices WHERE id = :i", i=nvr)[0]
            == ("Hikvision", "DS-7608N")
        )
    )
    assert (
        q(engine, "SELECT firmware FROM gb_devices WHERE device_id = :i", i=nvr)[0][0]
        == "V4.30.005"
    )
    alarm = wait_for(
        lambda: q(
            engine,
            "SELECT kind, severity FROM alarms WHERE device_id = :i",
            i=channels[1].device_id,
        )
    )
    assert alarm == [("zone_intrusion", 1)], q(engine, "SELECT topic, reason FROM dead_letters")
    # unregistered: the NVR and its channels went offline (after having been online)
    assert wait_for(
        lambda: q(engine, "SELECT status FROM devices WHERE id = :i", i=nvr)[0][0] == "offline"
    )
    assert wait_for(
        lambda: (
            q(engine, "SELECT status FROM devices WHERE id = :i", i=channels[1].device_id)[0][0]
            == "offline"
        )
    )
    online_before = q(
        engine, "SELECT count(*) FROM device_presence WHERE device_id = :i", i=channels[1].device_id
    )
    assert online_before[0][0] >= 1
