"""The gateway over TCP, across a restart, with per-device passwords and CRS, missed keepalives,
mobile positions and on-demand catalog queries."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from sqlalchemy import text

from simulators.sip_device import Channel, SimDevice, SimEndpoint
from tests.gb28181.conftest import DOMAIN, PASSWORD, ROOT, new_id, run, wait_for


def q(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


async def until(check, timeout: float = 20.0):
    return await asyncio.to_thread(wait_for, check, timeout)


def test_tcp_catalog_position_and_on_demand_query(
    gateway, register, start_worker, engine, mqtt_broker
):
    start_worker()
    gw = gateway()
    mobile = register(138, lon=115.8, lat=28.6)  # a body cam / vehicle unit (mobile device)
    dev = SimDevice(
        mobile,
        PASSWORD,
        edition=2022,
        encoding="UTF-8",
        channels=[Channel(new_id(132), "车载前视", None, None)],
    )

    async def scenario():
        ep = await SimEndpoint(("127.0.0.1", gw.port), DOMAIN, transport="tcp").open()
        ep.add(dev)
        try:
            assert await ep.register(dev) == 200
            assert await until(
                lambda: (
                    q(engine, "SELECT count(*) FROM gb_devices WHERE parent_id = :p", p=mobile)[0][
                        0
                    ]
                    == 1
                )
            )
            assert await ep.position(dev, 115.85, 28.65, speed=42.0) == 200
            # a 2022-only alarm type from the channel: 13 图像遮挡报警
            assert (
                await ep.alarm(
                    dev, source=dev.channels[0].device_id, priority=2, method=5, alarm_type=13
                )
                == 200
            )
            # the subscription for positions arrived over the same TCP connection
            assert await until(lambda: any(m.method == "SUBSCRIBE" for m in ep.received), 10)
            before = dev.queries.count("Query.Catalog")
            await asyncio.to_thread(_publish_cmd, mqtt_broker, mobile, {"cmd": "catalog"})
            assert await until(lambda: dev.queries.count("Query.Catalog") > before, 10)
        finally:
            ep.close()

    run(scenario())
    pos = wait_for(
        lambda: q(
            engine,
            "SELECT ST_X(geom), ST_Y(geom), speed_kmh FROM positions WHERE device_id = :i",
            i=mobile,
        )
    )
    assert pos and abs(pos[0][0] - 115.85) < 1e-9 and pos[0][2] == 42.0
    # a channel without its own position takes its parent's
    ch = q(
        engine,
        "SELECT ST_X(position), ST_Y(position) FROM devices WHERE id = :i",
        i=dev.channels[0].device_id,
    )
    assert ch == [(115.8, 28.6)]
    alarm = wait_for(
        lambda: q(
            engine,
            "SELECT kind, severity, detail->'gb28181'->>'edition' FROM alarms WHERE device_id = :i",
            i=dev.channels[0].device_id,
        )
    )
    assert alarm == [("occlusion", 2, "2022")]


def _publish_cmd(broker, device_id: str, payload: dict) -> None:
    from tests.ingest.conftest import mqtt_client

    client, _ = mqtt_client(broker, broker.user, broker.password)
    client.publish(f"gw/v1/{device_id}/cmd", json.dumps(payload), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_own_password_and_gcj02_positions(gateway, register, start_worker, engine):
    from hardware.crs import to_wgs84

    start_worker()
    nvr = register(118)
    out = subprocess.run(
        [sys.executable, "-m", "gridwatch", "gb28181", "device", nvr, "--password", "own-pw", "--crs", "gcj02", "--json"],
        capture_output=True, cwd=ROOT, timeout=60, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "gridwatch", "gb28181", "device", new_id(118), "--password", "x"],
        capture_output=True, cwd=ROOT, timeout=60, text=True,
    )  # fmt: skip
    assert bad.returncode == 1 and "not a registered device" in bad.stderr
    gw = gateway()
    chan = Channel(new_id(132), "GCJ-02 通道", 115.9, 28.68)
    dev = SimDevice(nvr, "own-pw", channels=[chan])

    async def scenario():
        ep = await SimEndpoint(("127.0.0.1", gw.port), DOMAIN).open()
        ep.add(dev)
        try:
            assert await ep.register(dev, password=PASSWORD) == 403  # the platform's is not its own
            assert await ep.register(dev) == 200
            assert await until(
                lambda: (
                    q(engine, "SELECT count(*) FROM gb_devices WHERE parent_id = :p", p=nvr)[0][0]
                    == 1
                )
            )
        finally:
            ep.close()

    run(scenario())
    lon, lat = to_wgs84(115.9, 28.68, "gcj02")
    got = q(
        engine, "SELECT ST_X(position), ST_Y(position) FROM devices WHERE id = :i", i=chan.device_id
    )[0]
    assert abs(got[0] - lon) < 1e-7 and abs(got[1] - lat) < 1e-7 and abs(got[0] - 115.9) > 1e-4


def test_missed_keepalives_offline(gateway, register, start_worker, engine):
    start_worker()
    gw = gateway()
    ipc = register(132, heartbeat_s=1)
    dev = SimDevice(ipc, PASSWORD)

    async def scenario():
        ep = await SimEndpoint(("127.0.0.1", gw.port), DOMAIN).open()
        ep.add(dev)
        try:
            assert await ep.register(dev) == 200
            assert await ep.keepalive(dev) == 200
            assert await until(
                lambda: (
                    q(engine, "SELECT status FROM devices WHERE id = :i", i=ipc)[0][0] == "online"
                )
            )
        finally:
            ep.close()

    run(scenario())
    # no keepalive for 3 intervals (3 x 1 s here; 3 x 60 s by default): offline
    assert wait_for(
        lambda: q(engine, "SELECT status FROM devices WHERE id = :i", i=ipc)[0][0] == "offline", 30
    )


def test_restart_loses_nothing_acknowledged(gateway, register, start_worker, engine):
    start_worker()
    gw = gateway()
    ipc = register(132)
    dev = SimDevice(ipc, PASSWORD)
    acked: list[str] = []

    async def first():
        ep = await SimEndpoint(("127.0.0.1", gw.port), DOMAIN).open()
        ep.add(dev)
        try:
            assert await ep.register(dev) == 200
            for i in range(30):
                sn = str(5000 + i)
                if await ep.alarm(dev, sn=sn, method=2, alarm_type=2, priority=2) == 200:
                    acked.append(sn)
        finally:
            ep.close()

    run(first())
    gw.kill9()  # right after the last 200 OK
    gw2 = gateway(port=gw.port)

    async def second():
        ep = await SimEndpoint(("127.0.0.1", gw2.port), DOMAIN).open()
        ep.add(dev)
        try:
            # the registration survived the restart: no new REGISTER needed for a keepalive
            assert await ep.keepalive(dev) == 200
        finally:
            ep.close()

    run(second())
    assert len(acked) == 30
    got = wait_for(
        lambda: (
            q(engine, "SELECT sum(repeat_count) FROM alarms WHERE device_id = :i", i=ipc)[0][0]
            == 30
        ),
        30,
    )
    assert got, q(engine, "SELECT msg_id, repeat_count FROM alarms WHERE device_id = :i", i=ipc)
    msgs = q(
        engine, "SELECT count(DISTINCT msg_id) FROM alarm_messages WHERE device_id = :i", i=ipc
    )
    assert msgs == [(30,)]
