"""A SIA DC-09 sender written from the published message format (ANSI/SIA DC-09): framing
LF <CRC><0LLL>"<id>"<seq>R<rcvr>L<pref>#<acct>[<data>]<timestamp> CR, CRC-16 (ARC, poly
0xA001 reflected) and the length in hex over the part between LF and CR, AES-CBC with a zero
IV over pad|data]timestamp for encrypted accounts."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime

from Crypto.Cipher import AES


def crc16(data: bytes) -> int:
    """CRC-16/ARC: polynomial x^16 + x^15 + x^2 + 1 (0x8005, processed reflected as 0xA001)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def timestamp(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).strftime("_%H:%M:%S,%m-%d-%Y")


def frame(body: str) -> bytes:
    """LF + CRC (4 hex) + length (0LLL, hex) + body + CR."""
    raw = body.encode("ascii")
    return b"\n" + f"{crc16(raw):04X}{len(raw):04X}".encode() + raw + b"\r"


def message(
    account: str,
    data: str,
    *,
    kind: str = "SIA-DCS",
    seq: int = 1,
    receiver: str = "R0",
    line: str = "L0",
    key: str | None = None,
    when: datetime | None = None,
    with_time: bool = True,
) -> bytes:
    """One DC-09 message; `data` is what goes between the brackets, e.g. '#1234|Nri3/BA'."""
    stamp = timestamp(when) if with_time else ""
    if key is None:
        body = f'"{kind}"{seq:04d}{receiver}{line}#{account}[{data}]{stamp}'
    else:
        plain = f"|{data.split('|', 1)[-1]}]{stamp}"
        pad = 16 - len(plain) % 16
        plain = "".join(random.choices(string.ascii_letters + string.digits, k=pad)) + plain
        cipher = AES.new(key.encode(), AES.MODE_CBC, bytes(16)).encrypt(plain.encode("ascii"))
        body = f'"*{kind}"{seq:04d}{receiver}{line}#{account}[{cipher.hex().upper()}'
    return frame(body)


def answer_type(reply: bytes, key: str | None = None) -> str:
    """ACK / NAK / DUH of a receiver's answer, after checking its CRC and length."""
    text = reply.strip(b"\n\r").decode("ascii")
    crc, length, body = text[:4], text[4:8], text[8:]
    assert int(crc, 16) == crc16(body.encode()), f"bad CRC in answer {reply!r}"
    assert int(length, 16) == len(body), f"bad length in answer {reply!r}"
    return body.split('"')[1].lstrip("*")
