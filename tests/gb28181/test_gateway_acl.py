"""Least privilege at the broker: each gateway publishes with accounts of its own that the real
Mosquitto limits to the devices it fronts; gateway A cannot publish for a device of gateway B."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gb28181.publisher import GatewayPublisher
from gridwatch.settings import get_settings
from simulators.sip_device import SimDevice, SimEndpoint
from tests.gb28181.conftest import DOMAIN, PASSWORD, new_id, run, wait_for
from tests.gb28181.test_gateway_flow import q, until
from tests.ingest.conftest import Collector


def _local() -> None:
    if not get_settings().local_mqtt:
        pytest.skip("needs the project-local Mosquitto and its dynamic-security plugin")


async def _outcome(fut: asyncio.Future | None) -> str:
    assert fut is not None
    try:
        await asyncio.wait_for(fut, 20)
    except ConnectionError as exc:
        return f"refused: {exc}"
    return "ok"


def test_gateway_a_cannot_publish_for_gateway_b(mqtt_broker, hub_client) -> None:
    _local()
    da, db, dc = new_id(132), new_id(132), new_id(132)
    seen = Collector(hub_client)
    hub_client.subscribe("gw/v1/#", qos=1)
    tag = uuid.uuid4().hex[:6]

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        a = GatewayPublisher(get_settings(), f"acl-a-{tag}", shards=1)
        b = GatewayPublisher(get_settings(), f"acl-b-{tag}", shards=1)
        await asyncio.to_thread(a.start, loop, [da])
        await asyncio.to_thread(b.start, loop, [db])
        try:
            assert await _outcome(a.publish(f"gw/v1/{da}/alarm", b'{"from": "a"}')) == "ok"
            assert await _outcome(b.publish(f"gw/v1/{db}/alarm", b'{"from": "b"}')) == "ok"
            # A's own client, past its local check: the broker itself refuses B's device
            raw = a.pubs[0].publish(f"gw/v1/{db}/alarm", b'{"from": "a"}', qos=1)
            assert "reason 0x87" in await _outcome(raw)
            assert "not a device this gateway fronts" in await _outcome(
                a.publish(f"gw/v1/{db}/heartbeat", b"{}")
            )
            # nor may it send commands to its own devices' command topic
            cmd = a.pubs[0].publish(f"gw/v1/{da}/cmd", b"{}", qos=1)
            assert "reason 0x87" in await _outcome(cmd)
            # a grant (a new channel): the broker reconnects A's client with its new rules
            await a.grant([dc])
            assert await _outcome(a.publish(f"gw/v1/{dc}/state", b"online")) == "ok"
            assert await _outcome(a.publish(f"gw/v1/{da}/alarm", b'{"again": 1}')) == "ok"
            # re-homed: A fronts dc only from now on, and the broker refuses da from A
            await a.set_devices([dc])
            raw = a.pubs[0].publish(f"gw/v1/{da}/alarm", b'{"late": 1}', qos=1)
            assert "reason 0x87" in await _outcome(raw)
        finally:
            a.stop()
            b.stop()

    run(scenario())
    assert wait_for(lambda: {f"gw/v1/{da}/alarm", f"gw/v1/{db}/alarm"} <= set(seen.topics()))
    assert wait_for(lambda: f"gw/v1/{dc}/state" in seen.topics())
    payloads = [p for t, p in seen.messages if t == f"gw/v1/{db}/alarm"]
    assert payloads == [b'{"from": "b"}']
    assert f"gw/v1/{da}/cmd" not in seen.topics()
    assert b'{"late": 1}' not in [p for _, p in seen.messages]


def test_two_gateway_processes_each_front_their_own(
    gateway, register, start_worker, engine, mqtt_broker
) -> None:
    _local()
    start_worker()
    gw_a = gateway()
    gw_b = gateway(sip_id="36012100002000000002")
    da, db = register(132), register(132)
    dev_a, dev_b = SimDevice(da, PASSWORD), SimDevice(db, PASSWORD)

    async def scenario() -> None:
        ep_a = await SimEndpoint(("127.0.0.1", gw_a.port), DOMAIN).open()
        ep_b = await SimEndpoint(("127.0.0.1", gw_b.port), DOMAIN).open()
        ep_a.add(dev_a)
        ep_b.add(dev_b)
        try:
            assert await ep_a.register(dev_a) == 200
            assert await ep_b.register(dev_b) == 200
            assert await ep_a.alarm(dev_a, priority=1, method=5, alarm_type=6) == 200
            assert await ep_b.alarm(dev_b, priority=2, method=5, alarm_type=6) == 200
            # a device of B speaking to A without registering there is refused by A
            assert await ep_a.keepalive(dev_b) == 403
            for i in (da, db):
                assert await until(
                    lambda i=i: q(engine, "SELECT 1 FROM alarms WHERE device_id = :i", i=i)
                ), q(engine, "SELECT topic, reason FROM dead_letters")
        finally:
            ep_a.close()
            ep_b.close()

    run(scenario())
    rows = dict(
        q(
            engine,
            "SELECT device_id, gateway FROM gb_devices WHERE device_id IN (:a, :b)",
            a=da,
            b=db,
        )
    )
    assert rows == {
        da: "gb28181-36012100002000000001",
        db: "gb28181-36012100002000000002",
    }
