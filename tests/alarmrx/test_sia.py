"""The SIA DC-09 receiver against a sender written from the published format, checked against
pysiaalarm's own parser; end to end through MQTT and ingest; nothing lost across a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pysiaalarm import SIAAccount
from pysiaalarm.event import SIAEvent
from sqlalchemy import text

from alarmrx.codes import classify
from alarmrx.receiver import pending_id
from tests.alarmrx.sia_sender import answer_type, crc16, message
from tests.gb28181.conftest import free_port, new_id, register  # noqa: F401 - fixture
from tests.ingest.conftest import start_worker, wait_for  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
KEY = "0123456789ABCDEF"


def test_sender_matches_pysiaalarm_parser() -> None:
    assert crc16(b"123456789") == 0xBB3D  # the CRC-16/ARC check value
    accounts = {"1234": SIAAccount("1234"), "AB12": SIAAccount("AB12", KEY)}
    plain = SIAEvent.from_line(message("1234", "#1234|Nri3/BA").decode().strip(), accounts)
    assert plain.valid_message and plain.code == "BA" and plain.ri == "3" and plain.valid_timestamp
    enc = SIAEvent.from_line(message("AB12", "#AB12|Nri5/FA", key=KEY).decode().strip(), accounts)
    assert enc.valid_message and enc.encrypted and enc.code == "FA" and enc.ri == "5"
    cid = SIAEvent.from_line(
        message("1234", "#1234|1120 01 007", kind="ADM-CID").decode().strip(), accounts
    )
    assert cid.code == "PA"  # Contact ID 120 (panic), qualifier 1 (new)
    old = message("1234", "#1234|Nri3/BA", when=datetime.now(UTC) - timedelta(minutes=10))
    assert not SIAEvent.from_line(old.decode().strip(), accounts).valid_timestamp
    assert classify("BA") == ("alarm", "burglary", 1) and classify("BR")[:2] == (
        "restoral",
        "burglary",
    )
    assert classify("RP")[0] == "supervision" and classify("XQ") == ("other", "sia_xq", 4)


class ReceiverProcess:
    def __init__(self, port: int) -> None:
        self.port = port
        self.env = dict(os.environ, GRIDWATCH_SIA_HOST="127.0.0.1", GRIDWATCH_SIA_PORT=str(port))
        self.log = Path(f"/tmp/gw-sia-test-{uuid.uuid4().hex[:8]}.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> ReceiverProcess:
        logf = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gridwatch", "alarm-receiver"], env=self.env, cwd=ROOT,
            stdout=logf, stderr=logf,
        )  # fmt: skip
        ok = wait_for(lambda: "SIA DC-09 receiver on" in self.log.read_text(errors="replace"), 120)
        assert ok, self.log.read_text(errors="replace")[-3000:]
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)


@pytest.fixture()
def receiver(services, db_url):
    started: list[ReceiverProcess] = []

    def start(port: int | None = None) -> ReceiverProcess:
        rx = ReceiverProcess(port or free_port())
        started.append(rx)  # stopped at the end even when it never came up
        return rx.start()

    yield start
    for rx in started:
        rx.stop()


def account_cmd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gridwatch", "alarm-receiver", "account", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip


def q(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


class Tcp:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)

    def send(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        out = b""
        while not out.endswith(b"\r"):
            chunk = self.sock.recv(1024)
            if not chunk:
                break
            out += chunk
        return out


def udp_send(port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(15)
        s.sendto(data, ("127.0.0.1", port))
        return s.recv(1024)


def test_panel_alarms_restorals_supervision_unknown(receiver, register, start_worker, engine):  # noqa: F811
    start_worker()
    panel = register(117, lon=115.91, lat=28.67, heartbeat_s=60)
    enc_panel = register(117, lon=115.92, lat=28.66)
    acct, enc_acct = f"{uuid.uuid4().int % 0xFFFFFF:06X}", f"{uuid.uuid4().int % 0xFFFFFF:06X}"
    assert account_cmd(acct, panel).returncode == 0
    assert account_cmd(enc_acct, enc_panel, "--key", KEY).returncode == 0
    bad = account_cmd("XYZ!", panel)
    assert bad.returncode == 1 and "hexadecimal" in bad.stderr
    rx = receiver()
    tcp = Tcp(rx.port)
    first = message(acct, f"#{acct}|Nri3/BA", seq=1)
    assert answer_type(tcp.send(first)) == "ACK"
    assert answer_type(tcp.send(first)) == "ACK"  # a retransmission: the same bytes
    # a retry the panel stamped afresh (the test used to rebuild the message here, and the two
    # stamps differed whenever a second ticked between them: a third alarm message)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert answer_type(tcp.send(message(acct, f"#{acct}|Nri3/BA", seq=1, when=later))) == "ACK"
    assert (
        answer_type(tcp.send(message(acct, f"#{acct}|1301 00 000", kind="ADM-CID", seq=2))) == "ACK"
    )
    assert answer_type(tcp.send(message(acct, "", kind="NULL", seq=3))) == "ACK"
    # encrypted, over UDP: fire, then its restoral
    assert (
        answer_type(udp_send(rx.port, message(enc_acct, f"#{enc_acct}|Nri7/FA", key=KEY, seq=4)))
        == "ACK"
    )
    # refusals: bad CRC, stale timestamp, unknown code, unknown account
    broken = bytearray(message(acct, f"#{acct}|Nri3/PA", seq=5))
    broken[-3] ^= 1
    assert answer_type(tcp.send(bytes(broken))) == "NAK"
    stale = message(acct, f"#{acct}|Nri3/PA", seq=6, when=datetime.now(UTC) - timedelta(minutes=10))
    assert answer_type(tcp.send(stale)) == "NAK"
    assert answer_type(tcp.send(message(acct, f"#{acct}|Nri3/AK", seq=7))) == "DUH"
    stranger = "FEDC98"
    assert answer_type(tcp.send(message(stranger, f"#{stranger}|Nri1/BA", seq=8))) == "NAK"

    sql = "SELECT kind, severity, detail->'sia'->>'zone' FROM alarms WHERE device_id = :d"
    assert wait_for(lambda: len(q(engine, sql, d=panel)) == 2)
    alarms = q(engine, sql, d=panel)
    assert sorted(alarms) == [("ac_loss", 3, "000"), ("burglary", 1, "3")]  # CID 301: AC loss
    assert q(engine, "SELECT count(*) FROM alarm_messages WHERE device_id = :d", d=panel)[0][0] == 2
    assert wait_for(
        lambda: q(engine, "SELECT kind FROM alarms WHERE device_id = :d", d=enc_panel)
    ) == [("fire",)]
    # the restoral is noted on the open fire alarm
    assert (
        answer_type(udp_send(rx.port, message(enc_acct, f"#{enc_acct}|Nri7/FR", key=KEY, seq=9)))
        == "ACK"
    )
    notes = q(
        engine,
        "SELECT e.actor, e.note FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id WHERE a.device_id = :d AND e.actor = 'sia-dc09'",
        d=enc_panel,
    )
    assert notes and "FR" in notes[0][1]
    # supervision made the panel present; the stranger waits on the pending list
    assert wait_for(
        lambda: q(engine, "SELECT status FROM devices WHERE id = :d", d=panel)[0][0] == "online"
    )
    pend = wait_for(
        lambda: q(
            engine,
            "SELECT convert_from(last_payload, 'UTF8') FROM pending_devices WHERE id = :i",
            i=pending_id("360121", stranger),
        )
    )
    assert pend and f'"account":"{stranger}"' in pend[0][0]


def test_receiver_restart_loses_nothing_acknowledged(receiver, register, start_worker, engine):  # noqa: F811
    start_worker()
    panel = register(117)
    acct = f"{uuid.uuid4().int % 0xFFFFFF:06X}"
    assert account_cmd(acct, panel).returncode == 0
    rx = receiver()
    tcp = Tcp(rx.port)
    codes = ["BA", "FA", "PA", "MA", "TA", "AT", "YT", "OP", "CL", "GA"] * 2
    acked = 0
    for i, code in enumerate(codes):
        if answer_type(tcp.send(message(acct, f"#{acct}|Nri{i}/{code}", seq=100 + i))) == "ACK":
            acked += 1
    rx.stop(signal.SIGKILL)
    assert acked == len(codes)
    got = wait_for(
        lambda: (
            q(engine, "SELECT count(*) FROM alarm_messages WHERE device_id = :d", d=panel)[0][0]
            == acked
        ),
        30,
    )
    assert got
    rx2 = receiver(rx.port)
    assert answer_type(Tcp(rx2.port).send(message(acct, f"#{acct}|Nri1/BA", seq=200))) == "ACK"


def test_demo_panel_messages_parse() -> None:
    """The demo's panel simulator writes what pysiaalarm (and our test sender) accept."""
    from simulators.sia_panel import dc09

    accounts = {"C0FFEE": SIAAccount("C0FFEE")}
    ev = SIAEvent.from_line(dc09("C0FFEE", 7, "#C0FFEE|Nri2/TA").decode().strip(), accounts)
    assert ev.valid_message and ev.code == "TA" and ev.valid_timestamp
    null = SIAEvent.from_line(dc09("C0FFEE", 8, "", kind="NULL").decode().strip(), accounts)
    assert null.valid_message and null.code == "RP"
    assert (
        dc09("C0FFEE", 9, "#C0FFEE|Nri2/TR")[1:5]
        == message("C0FFEE", "#C0FFEE|Nri2/TR", seq=9)[1:5]
    )
