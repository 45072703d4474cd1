"""A simulated SIA DC-09 panel for the demo: null-message supervision, now and then an alarm and
its restoral (framing, CRC-16 and timestamps as DC-09 gives them; unencrypted)."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime

log = logging.getLogger(__name__)
DEMO_CODES = [("BA", "BR"), ("TA", "TR"), ("AT", "AR"), ("FA", "FR"), ("PA", "PR")]


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def dc09(account: str, seq: int, data: str, kind: str = "SIA-DCS") -> bytes:
    stamp = datetime.now(UTC).strftime("_%H:%M:%S,%m-%d-%Y")
    body = f'"{kind}"{seq:04d}R0L0#{account}[{data}]{stamp}'.encode("ascii")
    return b"\n" + f"{crc16(body):04X}{len(body):04X}".encode() + body + b"\r"


async def run_panel(
    host: str, port: int, account: str, *, speed: float = 1.0, seed: int = 1, stop=None
) -> None:
    """Supervise every 60 s / speed; an alarm about every 5 minutes / speed, restored later."""
    rnd = random.Random(seed)
    seq = 0
    while stop is None or not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(5)
            continue
        try:
            while stop is None or not stop.is_set():
                seq = seq % 9999 + 1
                if rnd.random() < 0.2:
                    alarm, restore = rnd.choice(DEMO_CODES)
                    zone = rnd.randint(1, 8)
                    for code in (alarm, restore):
                        writer.write(dc09(account, seq, f"#{account}|Nri{zone}/{code}"))
                        await writer.drain()
                        await reader.readuntil(b"\r")
                        seq = seq % 9999 + 1
                        await asyncio.sleep(rnd.uniform(20, 60) / speed)
                writer.write(dc09(account, seq, "", kind="NULL"))
                await writer.drain()
                await reader.readuntil(b"\r")
                await asyncio.sleep(60 / speed)
        except (OSError, asyncio.IncompleteReadError) as exc:
            log.info("panel %s: connection lost (%s); reconnecting", account, exc)
        finally:
            writer.close()
