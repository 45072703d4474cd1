"""The gateway against SIPp, a real SIP peer: registration with digest auth, wrong passwords,
keepalives, a 500-channel catalog in 50 messages, alarms with GB2312 bodies in both editions,
unregistration, malformed and oversized messages."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from simulators.sip_device import Channel, SimDevice, catalog_body, device_body
from tests.gb28181.conftest import DOMAIN, PASSWORD, free_port, new_id, wait_for
from tests.gb28181.sipp import Scenario, available, run_sipp

pytestmark = pytest.mark.skipif(not available(), reason="SIPp (Debian sip-tester) not installed")


def q(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


@pytest.mark.parametrize("edition", [2016, 2022])
def test_sipp_register_keepalive_catalog_alarm_unregister(
    edition, gateway, register, start_worker, engine, tmp_path
):
    start_worker()
    gw = gateway()
    nvr = register(118, name=f"NVR {edition}", gb_edition=edition)
    channels = [
        Channel(new_id(132), f"{edition}年 通道{i} 南昌县", 115.9 + i * 1e-4, 28.68)
        for i in range(500)
    ]
    dev = SimDevice(nvr, PASSWORD, edition=edition, encoding="GB2312", channels=channels)
    calls = [Scenario(nvr, DOMAIN, edition).register(PASSWORD)]
    calls[0].message(device_body(dev, "Notify", "Keepalive", "1", [("Status", "OK")]))
    for part in range(50):  # 500 channels, 10 per message, SumNum 500, over several SIPp calls
        body = catalog_body(dev, "7001", channels[part * 10 : part * 10 + 10], 500)
        if calls[-1].size() + len(body) > 50_000:
            calls.append(Scenario(nvr, DOMAIN, edition))
        calls[-1].message(body)
    alarm = device_body(
        dev,
        "Notify",
        "Alarm",
        "8001",
        [
            ("AlarmPriority", "2"),
            ("AlarmMethod", "5"),
            ("AlarmTime", "2026-01-01T08:30:00"),
            ("AlarmDescription", "绊线检测报警 南门"),
            ("Longitude", "115.9001"),
            ("Latitude", "28.6801"),
        ],
        source=channels[7].device_id,
        tail="<Info><AlarmType>5</AlarmType></Info>",
    )
    last = Scenario(nvr, DOMAIN, edition)
    last.message(alarm)
    last.message(alarm)  # the device repeats it (same SN and time): still one alarm
    if edition == 2022:  # a catalog notification removes a channel
        gone = catalog_body(dev, "9001", [channels[499]], 1, root="Notify", events=["DEL"])
        last.message(gone, method="NOTIFY")
    last.register(PASSWORD, expires=0)
    calls.append(last)
    for sc in calls:
        run_sipp(sc, gw.port, tmp_path, free_port())

    assert wait_for(
        lambda: (
            q(engine, "SELECT count(*) FROM gb_devices WHERE parent_id = :p", p=nvr)[0][0] == 500
        )
    ), gw.text()[-2000:]
    name = q(engine, "SELECT name FROM devices WHERE id = :i", i=channels[42].device_id)
    assert name == [(f"{edition}年 通道42 南昌县",)]
    got = wait_for(
        lambda: q(
            engine,
            "SELECT kind, severity, detail->'gb28181'->>'description', repeat_count "
            "FROM alarms WHERE device_id = :i",
            i=channels[7].device_id,
        )
    )
    assert got == [("tripwire_crossing", 2, "绊线检测报警 南门", 1)]
    assert q(engine, "SELECT edition FROM gb_devices WHERE device_id = :i", i=nvr) == [(edition,)]
    assert wait_for(
        lambda: q(engine, "SELECT status FROM devices WHERE id = :i", i=nvr)[0][0] == "offline"
    )
    assert q(engine, "SELECT count(*) FROM device_presence WHERE device_id = :i", i=nvr)[0][0] >= 1
    if edition == 2022:
        retired = q(
            engine,
            "SELECT retired_at IS NOT NULL FROM devices WHERE id = :i",
            i=channels[499].device_id,
        )
        assert retired == [(True,)]


def test_sipp_wrong_password_counted_and_rate_limited(gateway, register, tmp_path):
    gw = gateway()
    ipc = register(132)
    sc = Scenario(ipc, DOMAIN)
    for _ in range(5):
        sc.register("not-the-password", expect=403)
    sc.register_refused()  # blocked now: refused before any challenge, whatever the password
    run_sipp(sc, gw.port, tmp_path, free_port())
    gw.stop()
    log = gw.text()
    assert log.count(f"wrong SIP password for {ipc}") == 5
    assert "'register_wrong_password': 5" in log and "'register_blocked': 1" in log


def test_sipp_malformed_oversized_unknown_and_unregistered(
    gateway, register, start_worker, engine, tmp_path
):
    start_worker()
    gw = gateway()
    ipc = register(132)
    dev = SimDevice(ipc, PASSWORD)
    keepalive = device_body(dev, "Notify", "Keepalive", "5", [("Status", "OK")])
    # a device that never registered is refused
    run_sipp(Scenario(ipc, DOMAIN).message(keepalive, expect=403), gw.port, tmp_path, free_port())
    bad_length = (
        b"MESSAGE sip:3601210000@[remote_ip]:[remote_port] SIP/2.0\n"
        b"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        b"From: <sip:" + ipc.encode() + b"@3601210000>;tag=x\nTo: <sip:3601210000@3601210000>\n"
        b"Call-ID: [call_id]\nCSeq: {cseq} MESSAGE\nContent-Type: Application/MANSCDP+xml\n"
        b"Content-Length: 999\n\n<Notify/>"
    )
    huge = bad_length.replace(
        b"Content-Length: 999\n\n<Notify/>",
        b"Content-Length: [len]\n\n" + b"<Notify>" + b"x" * 40_000 + b"</Notify>",
    )
    sc = Scenario(ipc, DOMAIN).register(PASSWORD)
    sc.raw(bad_length, expect=400)
    sc.raw(huge, expect=513)
    sc.message(b"<Notify><CmdType>Keepalive</CmdType><SN>1", expect=400)  # not well-formed
    sc.message(b"<Notify>" + b"<a>" * 40 + b"</a>" * 40 + b"</Notify>", expect=400)  # too deep
    sc.message(keepalive, expect=200)  # and the gateway still works
    run_sipp(sc, gw.port, tmp_path, free_port())
    # an unknown id that knows the platform password lands on the pending list, with its address
    stranger = new_id(132)
    run_sipp(
        Scenario(stranger, DOMAIN).register(PASSWORD, expect=403), gw.port, tmp_path, free_port()
    )
    pending = wait_for(
        lambda: q(
            engine,
            "SELECT last_topic, convert_from(last_payload, 'UTF8') FROM pending_devices WHERE id = :i",
            i=stranger,
        )
    )
    assert pending and pending[0][0] == f"gw/v1/{stranger}/heartbeat"
    assert '"address":"127.0.0.1:' in pending[0][1] and '"via":"gb28181"' in pending[0][1]
    assert gw.proc.poll() is None
