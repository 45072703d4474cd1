"""The demo's GB/T 28181 and SIA devices: two NVRs with channels and a camera that speak SIP to
the gateway, one alarm panel that speaks DC-09 to the receiver (`gridwatch gb28181 demo-devices`)."""

from __future__ import annotations

import asyncio
import logging
import random

from sqlalchemy import text
from sqlalchemy.engine import Engine

from simulators.sip_device import Channel, SimDevice, SimEndpoint

log = logging.getLogger(__name__)
DEMO_SIP_PASSWORD = "sip-demo"  # the demo platform's SIP password; never outside a demo
DEMO_SIA_ACCOUNT = "C0FFEE"
# (type code, serial, channels, lon, lat, name) — around 南昌县's seat, 莲塘
DEMO_GB = [
    (118, 900001, 4, 115.944, 28.548, "莲塘镇 NVR 1"),
    (118, 900002, 3, 115.952, 28.556, "莲塘镇 NVR 2"),
    (132, 900003, 0, 115.938, 28.552, "莲塘 治安卡口 IPC"),
]
DEMO_PANEL = (117, 900004, 115.947, 28.551, "莲塘 银行 报警主机")


def _id(region: str, type_code: int, serial: int) -> str:
    from hardware.gbid import compose

    return compose(region, type_code, serial).code


def ensure_demo_gb_devices(engine: Engine, region: str) -> dict:
    """Register the demo's NVRs, camera and panel (once) and map the panel's account."""
    from alarmrx.store import SiaStore
    from geo.bulk import register_many

    regs = [
        {"id": _id(region, t, s), "lon": lon, "lat": lat, "name": name}
        for t, s, _, lon, lat, name in DEMO_GB
    ]
    t, s, lon, lat, name = DEMO_PANEL
    panel = _id(region, t, s)
    regs.append({"id": panel, "lon": lon, "lat": lat, "name": name})
    with engine.connect() as conn:
        have = {
            r[0]
            for r in conn.execute(
                text("SELECT id FROM devices WHERE id = ANY(:ids) AND retired_at IS NULL"),
                {"ids": [r["id"] for r in regs]},
            )
        }
    todo = [r for r in regs if r["id"] not in have]
    if todo:
        with engine.begin() as conn:
            register_many(conn, todo, "demo", reload_broker=False)
    SiaStore(engine).set_account(DEMO_SIA_ACCOUNT, panel, None)
    return {"gb28181": len(DEMO_GB), "panel": panel}


async def run_demo_devices(
    region: str, sip: tuple[str, int], domain: str, sia: tuple[str, int], speed: float = 1.0
) -> None:
    """Keep the demo devices talking until cancelled: register, keepalive, alarms, the panel."""
    from simulators.sia_panel import run_panel

    rnd = random.Random(28181)
    devices = []
    for t, s, n, lon, lat, _ in DEMO_GB:
        dev_id = _id(region, t, s)
        channels = [
            Channel(_id(region, 132, 950_000 + (s % 100) * 10 + i + 1), f"通道{i + 1}",
                    lon + rnd.uniform(-0.004, 0.004), lat + rnd.uniform(-0.004, 0.004))
            for i in range(n)
        ]  # fmt: skip
        devices.append(SimDevice(dev_id, DEMO_SIP_PASSWORD, channels=channels, catalog_chunk=2))
    panel = asyncio.create_task(
        run_panel(sia[0], sia[1], DEMO_SIA_ACCOUNT, speed=speed, seed=rnd.randrange(1 << 30))
    )
    try:
        while True:
            try:
                ep = await SimEndpoint(sip, domain).open()
            except OSError:
                await asyncio.sleep(5)
                continue
            try:
                for dev in devices:
                    ep.add(dev)
                    status = await ep.register(dev)
                    log.info("demo device %s registered: %s", dev.device_id, status)
                beat = 0
                while True:
                    await asyncio.sleep(max(1.0, 60 / speed))
                    beat += 1
                    for dev in devices:
                        if await ep.keepalive(dev) == 403:  # the gateway restarted: register
                            await ep.register(dev)
                    if rnd.random() < 0.3:
                        dev = rnd.choice(devices)
                        source = rnd.choice(dev.channels).device_id if dev.channels else None
                        await ep.alarm(dev, source=source, priority=rnd.randint(1, 3),
                                       method=5, alarm_type=rnd.choice([2, 5, 6, 8]))  # fmt: skip
                    if beat % 50 == 0:
                        for dev in devices:
                            await ep.register(dev)
            except (TimeoutError, OSError) as exc:
                log.info("demo devices: %s; starting over", exc)
            finally:
                ep.close()
            await asyncio.sleep(5)
    finally:
        panel.cancel()
