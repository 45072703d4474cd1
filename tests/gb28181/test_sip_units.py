"""Pure functions of the gateway: SIP parsing, digest auth, MANSCDP bodies, alarm tables."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gb28181 import alarmmap, manscdp, sip
from gb28181.digest import FailureLimiter, Nonces, expected_response, ha1, parse_authorization

REGISTER = (
    b"REGISTER sip:3601210000@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bK1\r\n"
    b"From: <sip:36012100001180000001@3601210000>;tag=abc\r\n"
    b"To: <sip:36012100001180000001@3601210000>\r\n"
    b"Call-ID: 1@10.0.0.5\r\nCSeq: 1 REGISTER\r\n"
    b"Contact: <sip:36012100001180000001@10.0.0.5:5060>\r\nExpires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_parse_register_and_answer() -> None:
    msg = sip.parse(REGISTER)
    assert msg.method == "REGISTER" and msg.cseq == (1, "REGISTER")
    assert msg.from_user() == "36012100001180000001"
    answer = sip.parse(sip.response(msg, 200, "OK", [("Expires", "3600")]))
    assert answer.status == 200 and answer.to_tag() is not None
    assert answer.get("via") == msg.get("via") and answer.call_id == "1@10.0.0.5"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (REGISTER.replace(b"Content-Length: 0", b"Content-Length: 5"), "only 0 body bytes"),
        (REGISTER + b"junk", "bytes after the body"),
        (REGISTER.replace(b"CSeq: 1 REGISTER\r\n", b""), "missing cseq"),
        (REGISTER.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), "bad request line"),
        (REGISTER.replace(b"Expires", b"Exp ires"), "bad header line"),
        (REGISTER[:-4] + b"\r\nX: y" * 70 + b"\r\n\r\n", "more than 64 headers"),
        (b"x" * 70_000, "> 32768"),
        (
            REGISTER.replace(b"Content-Length: 0", b"Content-Length: 0\r\nContent-Length: 0"),
            "more than one",
        ),
    ],
)
def test_refuses_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(sip.SipError, match=reason):
        sip.parse(data)


def test_stream_framer_splits_and_requires_length() -> None:
    framer = sip.StreamFramer()
    assert framer.feed(REGISTER[:50]) == []
    assert framer.feed(REGISTER[50:] + b"\r\n" + REGISTER) == [REGISTER, REGISTER]
    with pytest.raises(sip.SipError, match="Content-Length is required"):
        sip.StreamFramer().feed(REGISTER.replace(b"Content-Length: 0\r\n", b""))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=2000)
    | st.builds(
        lambda a, b: REGISTER[:a] + b, st.integers(0, len(REGISTER)), st.binary(max_size=300)
    )
)
def test_fuzz_parser_never_crashes(data: bytes) -> None:
    """Any bytes: a SipMessage or SipError, nothing else (and the framer likewise)."""
    try:
        sip.parse(data)
    except sip.SipError:
        pass
    try:
        sip.StreamFramer().feed(data)
    except sip.SipError:
        pass


@settings(max_examples=800, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from([None, "gb2312", "utf-8", "latin-1"]))
def test_fuzz_bodies_never_crash(body: bytes, charset: str | None) -> None:
    try:
        parsed = manscdp.parse(body, charset)
        manscdp.catalog(parsed)
    except manscdp.BodyError:
        pass


def _full(body: bytes, charset: str | None) -> manscdp.Body:
    """The full XML parser's reading (the fast path skipped)."""
    text, enc = manscdp.decode(body, charset)
    root = manscdp.fromstring(manscdp._ANY_DECL.sub("", text, count=1))
    return manscdp._checked(manscdp.Body(root.tag, "", "", "", root, enc))


_FIELDS = st.lists(
    st.tuples(
        st.sampled_from(["CmdType", "SN", "DeviceID", "Status", "Info", "X1"]),
        st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=24),
    ),
    max_size=6,
)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(["Notify", "Response", "Query", "Nota"]),
    _FIELDS,
    st.sampled_from(['<?xml version="1.0" encoding="GB2312"?>', '<?xml version="1.0"?>', "",
                     "<?xml version='1.0'?>", '<?xml version="1.0" encoding="latin1"?>']),
    st.sampled_from(["\r\n", "", " ", "\t"]),
    st.sampled_from([None, "gb2312", "utf-8", "latin-1"]),
)  # fmt: skip
def test_flat_fast_path_reads_what_the_xml_parser_reads(root, fields, decl, ws, charset) -> None:
    """A body the fast path takes is well-formed and the full parser reads the same; one it
    does not take goes to the full parser (which decides)."""
    inner = "".join(f"<{k}>{v}</{k}>{ws}" for k, v in fields)
    body = f"{decl}{ws}<{root}>{ws}{inner}</{root}>{ws}".encode()
    fast = manscdp._flat(body, charset)
    if fast is None:
        return
    try:
        full = _full(body, charset)
    except manscdp.BodyError as exc:
        with pytest.raises(manscdp.BodyError, match=re.escape(str(exc))):
            manscdp._checked(fast)
        return
    got = manscdp._checked(fast)
    assert (got.root, got.cmd_type, got.sn, got.device_id, got.encoding) == (
        full.root, full.cmd_type, full.sn, full.device_id, full.encoding)  # fmt: skip
    assert [(c.tag, (c.text or "").strip()) for c in got.el] == [
        (c.tag, (c.text or "").strip()) for c in full.el
    ]


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([None, "gb2312", "utf-8"]))
def test_fuzz_fast_path_takes_only_well_formed_bodies(body: bytes, charset: str | None) -> None:
    prefix = b'<?xml version="1.0"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>'
    for candidate in (body, prefix + body, prefix + body + b"</Notify>"):
        if manscdp._flat(candidate, charset) is not None:
            try:
                _full(candidate, charset)  # well-formed: never a ParseError
            except manscdp.BodyError:
                pass  # CmdType/SN/DeviceID checks: the same for both paths


def test_keepalive_takes_the_fast_path() -> None:
    body = (
        b'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n'
        b"<SN>43</SN>\r\n<DeviceID>36012100001320000001</DeviceID>\r\n<Status>OK</Status>\r\n"
        b"</Notify>\r\n"
    )
    assert manscdp._flat(body, None) is not None
    parsed = manscdp.parse(body)
    assert (parsed.cmd_type, parsed.sn, parsed.text("Status"), parsed.encoding) == (
        "Keepalive", "43", "OK", "gb18030")  # fmt: skip


def test_digest_roundtrip_and_wrong_password() -> None:
    nonces = Nonces("k")
    nonce = nonces.issue()
    uri = "sip:3601210000@127.0.0.1:5060"
    secret = ha1("36012100001180000001", "3601210000", "pw")
    from gb28181.digest import md5_hex

    good = md5_hex(f"{secret}:{nonce}:{md5_hex('REGISTER:' + uri)}")
    header = (
        f'Digest username="36012100001180000001", realm="3601210000", nonce="{nonce}", '
        f'uri="{uri}", response="{good}", algorithm=MD5'
    )
    params = parse_authorization(header)
    assert expected_response(params, "REGISTER", secret) == good
    assert (
        expected_response(params, "REGISTER", ha1("36012100001180000001", "3601210000", "x"))
        != good
    )
    assert nonces.check(nonce) == "ok"
    assert nonces.check(nonce, now=10**10) == "stale"
    assert nonces.check(nonce[:-1] + ("0" if nonce[-1] != "0" else "1")) == "bad"
    assert Nonces("other").check(nonce) == "bad"


def test_failure_limiter_blocks_then_forgets() -> None:
    lim = FailureLimiter(limit=3, window_s=60, block_s=30)
    for _ in range(3):
        assert not lim.blocked("1.2.3.4", now=0)
        lim.failure("1.2.3.4", now=0)
    assert lim.blocked("1.2.3.4", now=1) and not lim.blocked("5.6.7.8", now=1)
    assert not lim.blocked("1.2.3.4", now=31)


GB2312_ALARM = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify><CmdType>Alarm</CmdType><SN>17</SN>'
    "<DeviceID>36012100001320000007</DeviceID><AlarmPriority>2</AlarmPriority>"
    "<AlarmMethod>5</AlarmMethod><AlarmTime>2024-05-01T08:30:00</AlarmTime>"
    "<AlarmDescription>绊线检测报警</AlarmDescription><Longitude>115.89</Longitude>"
    "<Latitude>28.68</Latitude><Info><AlarmType>5</AlarmType></Info></Notify>"
).encode("gb2312")


def test_gb2312_body_and_alarm_mapping() -> None:
    body = manscdp.parse(GB2312_ALARM)
    assert body.encoding == "gb18030" and body.text("AlarmDescription") == "绊线检测报警"
    assert (
        alarmmap.kind_of(body.text("AlarmMethod"), body.text("Info/AlarmType"))
        == "tripwire_crossing"
    )
    assert alarmmap.severity_of(body.text("AlarmPriority")) == 2
    assert manscdp.gb_time(body.text("AlarmTime")).isoformat() == "2024-05-01T08:30:00+08:00"
    assert manscdp.lon_lat(body) == (115.89, 28.68)
    # a device that declares GB2312 but sends UTF-8 is still read
    lying = GB2312_ALARM.decode("gb2312").encode("utf-8")
    assert manscdp.parse(lying).text("AlarmDescription") == "绊线检测报警"
    assert (
        alarmmap.kind_of("2", "2") == "tamper"
        and alarmmap.kind_of("6", "9") == "gb_device_fault_type_9"
    )
    assert (
        alarmmap.msg_id("a", "1", "t")
        == alarmmap.msg_id("a", "1", "t")
        != alarmmap.msg_id("a", "2", "t")
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><Notify>&a;</Notify>',
            "not well-formed|Entit|DTD",
        ),
        (b"<Notify><CmdType>Keepalive</CmdType><SN>x</SN><DeviceID>1</DeviceID></Notify>", "SN"),
        (b"<Html/>", "root element"),
        (b"<Notify>" + b"<a>" * 20 + b"</a>" * 20 + b"</Notify>", "deeper"),
        (b'<?xml version="1.0" encoding="EBCDIC"?><Notify/>', "not supported"),
    ],
)
def test_bodies_refused(body: bytes, reason: str) -> None:
    with pytest.raises(manscdp.BodyError, match=reason):
        manscdp.parse(body)


def test_alarm_tables_of_both_editions() -> None:
    # GB/T 28181-2016 Annex A, every code, and what 2022 adds (13 图像遮挡报警, video method)
    expected_2016 = {
        (2, 1): "video_loss", (2, 2): "tamper", (2, 3): "disk_full",
        (2, 4): "high_temperature", (2, 5): "low_temperature",
        (5, 1): "manual_video", (5, 2): "motion", (5, 3): "left_object",
        (5, 4): "object_removed", (5, 5): "tripwire_crossing", (5, 6): "zone_intrusion",
        (5, 7): "wrong_direction", (5, 8): "loitering", (5, 9): "flow_count",
        (5, 10): "crowd_density", (5, 11): "video_anomaly", (5, 12): "fast_moving",
        (6, 1): "disk_fault", (6, 2): "fan_fault",
    }  # fmt: skip
    for (m, t), kind in expected_2016.items():
        assert alarmmap.kind_of(str(m), str(t), 2016) == kind
        assert alarmmap.kind_of(str(m), str(t), 2022) == kind  # 2022 keeps every 2016 code
    assert alarmmap.TYPES_2016[5].get(13) is None
    assert alarmmap.kind_of("5", "13", 2022) == "occlusion"
    # a device taken as 2016 (no X-GB-Ver) that sends a 2022 code is still understood
    assert alarmmap.kind_of("5", "13", 2016) == "occlusion"
    assert alarmmap.kind_of("5", "14", 2022) == "gb_video_type_14"
    assert alarmmap.kind_of("4", None, 2022) == "gb_gps"
    assert alarmmap.kind_of("2", None, 2016) == "gb_device"
    assert alarmmap.kind_of("x", "1", 2022) == "gb_unknown_type_1"
    assert [alarmmap.severity_of(p) for p in ("1", "2", "3", "4", "0", None, "9")] == [
        1, 2, 3, 4, 3, 3, 3,
    ]  # fmt: skip
