"""Cascading upward (issue 18 item 2): the hub registers as a lower platform with an upper
GB/T 28181 platform, answers its Catalog with the devices in scope and forwards new alarms.

The upper platform is played twice over real sockets: by the project's own gateway (with a
database and an ingest worker of its own, so what it stored is what it understood), and by
SIPp, which checks the digest answer itself."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from gb28181 import manscdp
from gb28181.cascade import (
    AlarmRow,
    CascadeConfig,
    CatalogRow,
    alarm_body,
    alarm_codes,
    catalog_bodies,
)
from gb28181.digest import authorization, expected_response, ha1, parse_authorization
from tests.gb28181.conftest import ROOT, GatewayProcess, free_port, new_id, wait_for
from tests.gb28181.sipp import available, upper_platform_xml

CASCADE_PASSWORD = "upper-gave-this"


# ------------------------------------------------------------------ units (no services)
def test_alarm_codes_go_back_to_the_standard_tables() -> None:
    assert alarm_codes("zone_intrusion") == (5, 6)
    assert alarm_codes("video_loss") == (2, 1)
    assert alarm_codes("occlusion") == (5, 13)  # 2022 only
    assert alarm_codes("gb_device_fault_type_9") == (6, 9)
    assert alarm_codes("gb_gps") == (4, None)
    assert alarm_codes("panic") == (7, None)  # a SIA panel's: "other", kind in the description
    gb = {"gb28181": {"method": "5", "type": "8"}}
    assert alarm_codes("loitering", gb) == (5, 8)  # the device's own codes kept


def test_catalog_bodies_round_trip_through_the_gateways_parser() -> None:
    cfg = CascadeConfig("34020000002000000001", "127.0.0.1", catalog_chunk=7)
    rows = [
        CatalogRow(new_id(132), f"南门 {i} & <东>", "Hikvision", "DS-2CD", "360121",
                   i % 3 != 0, 115.9 + i / 1000, 28.6, None, False)
        for i in range(23)
    ]  # fmt: skip
    bodies = catalog_bodies(cfg, "77", rows)
    assert len(bodies) == 4  # 7 + 7 + 7 + 2
    got = []
    for body in bodies:
        parsed = manscdp.parse(body)
        assert (parsed.root, parsed.cmd_type, parsed.sn) == ("Response", "Catalog", "77")
        total, items = manscdp.catalog(parsed)
        assert total == 23
        got += items
    assert [i.device_id for i in got] == [r.device_id for r in rows]
    assert got[4].name == "南门 4 & <东>" and got[3].status == "OFF" and got[4].status == "ON"
    assert got[5].parent_id == cfg.local_id and got[5].position == (115.905, 28.6)
    assert manscdp.catalog(manscdp.parse(catalog_bodies(cfg, "1", [])[0])) == (0, [])


def test_alarm_body_is_what_the_gateway_reads_back() -> None:
    from gb28181.alarmmap import kind_of

    cfg = CascadeConfig("34020000002000000001", "127.0.0.1", crs="gcj02", edition=2022)
    alarm = AlarmRow(91, 12345, new_id(132), "tripwire_crossing", 2, 1_767_227_400.0,
                     115.9, 28.68, {}, "南门")  # fmt: skip
    body = manscdp.parse(alarm_body(cfg, alarm))
    assert body.encoding == "utf-8" and body.sn == "12345"
    assert kind_of(body.text("AlarmMethod"), body.text("Info/AlarmType")) == "tripwire_crossing"
    assert body.text("AlarmPriority") == "2"
    assert body.text("AlarmTime") == "2026-01-01T08:30:00"  # Beijing time
    lon, lat = manscdp.lon_lat(body)
    assert 0.001 < abs(lon - 115.9) < 0.01  # GCJ-02 is offset from WGS 84 in China


def test_digest_client_answer_checks_with_and_without_qop() -> None:
    for qop in ("", ', qop="auth"'):
        challenge = parse_authorization(
            f'Digest realm="3402000000", nonce="abc123"{qop}, username="x", uri="x", response="x"'
        )
        value = authorization(challenge, "REGISTER", "sip:x@y", "36012100002000000001", "pw", 3)
        params = parse_authorization(value)
        secret = ha1("36012100002000000001", "3402000000", "pw")
        assert expected_response(params, "REGISTER", secret) == params["response"]
        assert ("qop" in params) == bool(qop)


def test_upper_setting_is_checked() -> None:
    assert CascadeConfig.parse_upper("sip:34020000002000000001@10.1.2.3:5070") == (
        "34020000002000000001", "10.1.2.3", 5070)  # fmt: skip
    assert CascadeConfig.parse_upper("34020000002000000001@upper.lan")[2] == 5060
    with pytest.raises(ValueError, match="20-digit"):
        CascadeConfig.parse_upper("sip:3402@10.1.2.3")


class _Sent:
    """The link's UDP transport, kept."""

    def __init__(self) -> None:
        self.out: list[tuple[bytes, tuple]] = []

    def sendto(self, data: bytes, addr) -> None:
        self.out.append((data, addr))


def test_link_answers_only_its_upper_platform_and_refuses_bad_bodies() -> None:
    import asyncio

    from gb28181.cascade import Cascade

    upper = "34020000002000000001"
    cfg = CascadeConfig(upper, "10.0.0.5", local_id="36012100002000000001")

    def request(body: bytes, call: str) -> bytes:
        return (
            f"MESSAGE sip:{cfg.local_id}@10.0.0.9:5061 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1\r\n"
            f"From: <sip:{upper}@3402000000>;tag=a\r\nTo: <sip:{cfg.local_id}@3601210000>\r\n"
            f"Call-ID: {call}\r\nCSeq: 7 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def scenario() -> list[int]:
        link = Cascade(cfg, store=None)  # type: ignore[arg-type] - no query reaches the store
        link._upper_ip = "10.0.0.5"
        sent = _Sent()
        link._udp = sent  # type: ignore[assignment]
        answer = manscdp.xml_body(
            "Response", [("CmdType", "Alarm"), ("SN", "9"), ("DeviceID", upper), ("Result", "OK")]
        )
        link.on_data(request(answer, "c1"), ("10.9.9.9", 5060))  # a stranger
        link.on_data(request(answer, "c2"), ("10.0.0.5", 5060))  # the upper's Response: 200
        link.on_data(request(answer, "c2"), ("10.0.0.5", 5060))  # its retransmission: again
        link.on_data(request(b"<Query><CmdType>Catalog", "c3"), ("10.0.0.5", 5060))
        link.on_data(b"INVITE nonsense", ("10.0.0.5", 5060))  # not SIP: dropped
        return [int(d[8:11]) for d, _ in sent.out]

    assert asyncio.run(scenario()) == [403, 200, 200, 400]


# ------------------------------------------------------------------ helpers
def q(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="module")
def upper_db(db_url):
    """A second hub's database in the same cluster: the upper platform's."""
    from sqlalchemy.engine import make_url

    from gridwatch.db import drop_database, get_engine, migrate
    from gridwatch.settings import get_settings

    name = f"{make_url(db_url).database}_upper"
    url = get_settings().db_url(name)
    migrate(url)
    yield name, get_engine(url=url)
    get_engine(url=url).dispose()
    drop_database(url)


def scope_region(engine) -> str:
    """A village of its own, so the link's scope is exactly this test's devices."""
    code = f"360121{random.randrange(100, 999)}{random.randrange(101, 999)}"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO regions (code, level, name) VALUES (:c, 5, :n) "
                "ON CONFLICT (code) DO NOTHING"
            ),
            {"c": code, "n": f"级联测试村 {code[-3:]}"},
        )
    return code


def lower_devices(register, engine, region: str, n: int) -> list[str]:
    ids = [register(132, lon=115.9 + i / 1000, lat=28.68, name=f"南门 {i} 号") for i in range(n)]
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE devices SET region_code = :r, "
                "status = CASE WHEN right(id, 1) < '5' THEN 'online' ELSE 'offline' END "
                "WHERE id = ANY(:ids)"
            ),
            {"r": region, "ids": ids},
        )
    return ids


def raise_alarm(db_url: str, device_id: str, kind: str, severity: int) -> int:
    """An alarm committed the way the ingest worker commits one (with its alarm.new event)."""
    from ingest.alarms import AlarmIn, store_alarms
    from ingest.events import emit_events

    with psycopg.connect(_libpq(db_url)) as conn, conn.cursor() as cur:
        out = store_alarms(
            cur,
            [AlarmIn(device_id, f"t-{uuid.uuid4().hex}", kind, severity, time.time(),
                     115.9, 28.68, {"note": "cascade test"})],
        )  # fmt: skip
        emit_events(cur, out.events())
        conn.commit()
    return out.new[0]["id"]


class CascadeProcess:
    """`python -m gridwatch gb28181 cascade` with GRIDWATCH_CASCADE_* of the test."""

    def __init__(self, lower_id: str, upper: str, region: str, port: int, **env: str) -> None:
        self.env = dict(os.environ)
        self.env.update(
            GRIDWATCH_SIP_ID=lower_id,
            GRIDWATCH_SIP_HOST="127.0.0.1",
            GRIDWATCH_CASCADE_UPPER=upper,
            GRIDWATCH_CASCADE_PASSWORD=CASCADE_PASSWORD,
            GRIDWATCH_CASCADE_REGION=region,
            GRIDWATCH_CASCADE_PORT=str(port),
            GRIDWATCH_CASCADE_KEEPALIVE_S="1",
            GRIDWATCH_LOG_LEVEL="INFO",
            **env,
        )
        self.log = Path(f"/tmp/gw-cascade-test-{uuid.uuid4().hex[:8]}.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> CascadeProcess:
        logf = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gridwatch", "gb28181", "cascade"],
            env=self.env, cwd=ROOT, stdout=logf, stderr=logf,
        )  # fmt: skip
        started = "alarms forwarded after event"  # its cursor is set: alarms from now on go up
        assert wait_for(lambda: started in self.text() or self.proc.poll() is not None, 60)
        assert self.proc.poll() is None, self.text()[-3000:]
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ------------------------------------------------------------------ the project's gateway above
def test_cascade_to_the_projects_own_gateway(upper_db, register, engine, db_url):
    from geo.bulk import register_many
    from tests.ingest.conftest import WorkerProcess

    upper_name, upper_engine = upper_db
    lower_id = new_id(200)  # the hub's platform id as the upper platform knows it
    upper_id = new_id(200)
    region = scope_region(engine)
    ids = lower_devices(register, engine, region, 25)
    outside = register(132, name="not in scope")  # another region: never sent upward
    with upper_engine.begin() as conn:  # the upper platform's installer added this hub
        register_many(
            conn, [{"id": lower_id, "lon": 115.85, "lat": 28.6, "name": "下级平台"}], "test",
            reload_broker=False, refresh_compliance=False,
        )  # fmt: skip
    upper_env = {"GRIDWATCH_DB_NAME": upper_name}
    worker = WorkerProcess(f"t-upper-{uuid.uuid4().hex[:6]}", f"u{uuid.uuid4().hex[:6]}")
    worker.env.update(upper_env)
    worker.start()
    upper = GatewayProcess(password=CASCADE_PASSWORD, sip_id=upper_id, env=upper_env)
    link: CascadeProcess | None = None
    try:
        assert worker.wait_connected(), worker.log.read_text()[-3000:]
        upper.start()
        link = CascadeProcess(
            lower_id, f"sip:{upper_id}@127.0.0.1:{upper.port}", region, free_port()
        ).start()

        def upper_channels():
            return q(
                upper_engine,
                "SELECT d.id, d.name FROM gb_devices g JOIN devices d ON d.id = g.device_id "
                "WHERE g.parent_id = :p ORDER BY d.id",
                p=lower_id,
            )

        got = wait_for(lambda: len(upper_channels()) == 25, 30)
        assert got, f"{upper_channels()}\n{link.text()[-2000:]}\n{upper.text()[-2000:]}"
        assert [r[0] for r in upper_channels()] == sorted(ids)
        assert dict(upper_channels())[ids[3]] == "南门 3 号"
        assert outside not in {r[0] for r in upper_channels()}
        reg = q(
            upper_engine,
            "SELECT transport, registered_until > now() FROM gb_devices WHERE device_id = :i",
            i=lower_id,
        )
        assert reg == [("udp", True)]
        # keepalives reach the upper platform's presence: the link shows online there
        assert wait_for(
            lambda: (
                q(upper_engine, "SELECT status FROM devices WHERE id = :i", i=lower_id)
                == [("online",)]
            ),
            20,
        )
        info = wait_for(
            lambda: (
                q(upper_engine, "SELECT vendor FROM devices WHERE id = :i", i=lower_id)
                == [("gridwatch",)]
            ),
            20,
        )
        assert info, "DeviceInfo answer not stored at the upper platform"

        # a new alarm of a device in scope is forwarded; one outside the scope is not
        raise_alarm(db_url, outside, "zone_intrusion", 1)
        raise_alarm(db_url, ids[7], "zone_intrusion", 2)

        def upper_alarms():
            return q(
                upper_engine,
                "SELECT device_id, kind, severity FROM alarms ORDER BY id",
            )

        assert wait_for(lambda: len(upper_alarms()) >= 1, 20), link.text()[-2000:]
        assert upper_alarms() == [(ids[7], "zone_intrusion", 2)]

        # the link stops (unregisters); an alarm raised meanwhile is forwarded after a restart
        link.stop()
        assert wait_for(
            lambda: (
                q(
                    upper_engine,
                    "SELECT registered_until IS NULL FROM gb_devices WHERE device_id = :i",
                    i=lower_id,
                )
                == [(True,)]
            ),
            10,
        )
        raise_alarm(db_url, ids[11], "video_loss", 3)
        link = CascadeProcess(
            lower_id, f"sip:{upper_id}@127.0.0.1:{upper.port}", region, free_port()
        ).start()
        assert wait_for(lambda: len(upper_alarms()) == 2, 20), link.text()[-2000:]
        assert upper_alarms()[1] == (ids[11], "video_loss", 3)
        time.sleep(1.0)  # nothing forwarded twice
        assert len(upper_alarms()) == 2
    finally:
        if link is not None:
            link.stop()
        upper.stop()
        worker.stop()


# ------------------------------------------------------------------ SIPp above
@pytest.mark.skipif(not available(), reason="SIPp (Debian sip-tester) not installed")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_cascade_to_sipp_as_upper_platform(transport, register, engine, db_url, tmp_path):
    lower_id, upper_id = new_id(200), new_id(200)
    region = scope_region(engine)
    ids = lower_devices(register, engine, region, 23)
    scenario = tmp_path / "upper.xml"
    scenario.write_bytes(
        upper_platform_xml(lower_id, "3601210000", upper_id, CASCADE_PASSWORD, "4711")
    )
    sipp_port = free_port()
    cmd = [
        "sipp", "-sf", str(scenario), "-p", str(sipp_port), "-i", "127.0.0.1",
        "-t", "u1" if transport == "udp" else "t1",
        "-m", "100000", "-nostdin", "-trace_msg", "-trace_err", "-buff_size", "1048576",
    ]  # fmt: skip
    sipp = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    link = None
    try:
        time.sleep(0.3)
        assert sipp.poll() is None, sipp.stderr.read().decode() if sipp.stderr else ""
        link = CascadeProcess(
            lower_id, f"sip:{upper_id}@127.0.0.1:{sipp_port}", region, free_port(),
            GRIDWATCH_CASCADE_EXPIRES="3600", GRIDWATCH_CASCADE_TRANSPORT=transport,
        ).start()  # fmt: skip

        def trace() -> str:
            # the link writes GB2312 (edition 2016), SIPp ASCII
            return "".join(
                p.read_bytes().decode("gb18030", errors="replace")
                for p in tmp_path.glob("*_messages.log")
            )

        assert wait_for(lambda: "catalog of 23 devices sent" in link.text(), 20), (
            link.text()[-3000:] + trace()[-3000:]
        )
        raise_alarm(db_url, ids[5], "loitering", 1)
        assert wait_for(lambda: "<CmdType>Alarm</CmdType>" in trace(), 10), link.text()[-2000:]
        assert wait_for(lambda: trace().count("<CmdType>Keepalive</CmdType>") >= 2, 10)
    finally:
        if link is not None:
            link.stop()
    assert wait_for(lambda: "Expires: 0" in trace(), 10)  # unregistered on stop
    sipp.terminate()
    sipp.wait(10)
    log = trace()
    assert "SIP/2.0 403" not in log  # SIPp's verifyauth accepted the digest answer
    assert "registered with upper platform" in link.text()
    # the catalog as SIPp received it: 23 items in 3 messages, SumNum 23 in each
    parts = [
        m
        for m in log.split("MESSAGE sip:")
        if "<CmdType>Catalog</CmdType>" in m and "<Response>" in m
    ]
    assert len(parts) == 3
    items = []
    for part in parts:
        start = part.index("<?xml")
        body = part[start : part.index("</Response>", start) + len("</Response>")]
        parsed = manscdp.parse(body.encode("gb18030"))
        total, got = manscdp.catalog(parsed)
        assert total == 23 and parsed.sn == "4711"
        items += got
    assert sorted(i.device_id for i in items) == sorted(ids)
    alarm = [m for m in log.split("MESSAGE sip:") if "<CmdType>Alarm</CmdType>" in m][0]
    assert f"<DeviceID>{ids[5]}</DeviceID>" in alarm
    assert "<AlarmMethod>5</AlarmMethod>" in alarm and "<AlarmType>8</AlarmType>" in alarm
    assert not list(tmp_path.glob("*_errors.log")) or not any(
        "Aborting" in p.read_text(errors="replace") for p in tmp_path.glob("*_errors.log")
    )


@pytest.mark.skipif(not available(), reason="SIPp (Debian sip-tester) not installed")
def test_cascade_wrong_password_refused_by_sipp(engine, tmp_path):
    """The other side of SIPp's check: an answer made with another password gets 403, and the
    link says so (and will try again later) instead of counting itself registered."""
    lower_id, upper_id = new_id(200), new_id(200)
    scenario = tmp_path / "upper.xml"
    scenario.write_bytes(upper_platform_xml(lower_id, "3601210000", upper_id, "the-right-one", "1"))
    sipp_port = free_port()
    cmd = [
        "sipp", "-sf", str(scenario), "-p", str(sipp_port), "-i", "127.0.0.1", "-t", "u1",
        "-m", "100", "-nostdin", "-trace_msg",
    ]  # fmt: skip
    sipp = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    link = None
    try:
        time.sleep(0.3)
        link = CascadeProcess(
            lower_id, f"sip:{upper_id}@127.0.0.1:{sipp_port}", scope_region(engine), free_port()
        ).start()
        assert wait_for(lambda: "answered REGISTER with 403" in link.text(), 15), link.text()
        assert "registered with upper platform" not in link.text()
    finally:
        if link is not None:
            link.stop()
        sipp.terminate()
        sipp.wait(10)
    log = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_messages.log"))
    assert "SIP/2.0 403" in log and "Authorization: Digest" in log
