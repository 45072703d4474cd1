"""Live view end to end: the console's live_input() asks the gateway (over the broker) to INVITE
a simulated NVR's channel; the channel sends RTP/PS (real H.264 from FFmpeg) over UDP or TCP;
FFmpeg decodes what live_input serves; leaving the block sends BYE."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from gb28181 import live
from gb28181.simdevice import Channel, SimDevice, SimEndpoint
from tests.gb28181.conftest import DOMAIN, PASSWORD, new_id, run
from tests.gb28181.test_gateway_flow import q, until


def _decode(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-probesize", "65536", "-analyzeduration", "2000000",
         "-f", "mpeg", "-i", url, "-frames:v", "15", "-f", "null", "-"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_live_view_invite_rtp_ps_to_ffmpeg(
    transport, gateway, register, start_worker, engine
) -> None:
    start_worker()
    gw = gateway()
    nvr = register(118)
    chan = Channel(new_id(132), "大门", 115.9, 28.68)
    dev = SimDevice(nvr, PASSWORD, channels=[chan])

    async def scenario() -> None:
        ep = await SimEndpoint(("127.0.0.1", gw.port), DOMAIN).open()
        ep.add(dev)
        try:
            assert await ep.register(dev) == 200
            # the channel is stored and granted (its heartbeat made it online)
            assert await until(
                lambda: (
                    q(engine, "SELECT status FROM devices WHERE id = :i", i=chan.device_id)
                    == [("online",)]
                ),
                60,
            )
            async with live.live_input(chan.device_id, transport=transport) as view:
                out = await asyncio.to_thread(_decode, view.url)
                assert out.returncode == 0, out.stderr[-2000:]
                assert "Video: h264" in out.stderr and "320x240" in out.stderr, out.stderr[-2000:]
                assert view.receiver.packets > 0 and view.receiver.foreign == 0
            invites = [m for m in ep.received if m.method == "INVITE"]
            assert len(invites) == 1 and invites[0].uri.startswith(f"sip:{chan.device_id}@")
            offer = live.parse_sdp(invites[0].body)
            assert offer.port == view.rtp_port and offer.transport == transport
            assert offer.ssrc == view.ssrc and offer.rtpmap["96"] == "PS"
            assert await until(lambda: chan.device_id in ep.bye_received, 20)
        finally:
            ep.close()
            for stream in ep.streams.values():  # stopped by the BYE; its FFmpeg reaped
                if stream.task is not None:
                    await asyncio.wait_for(stream.task, 20)

    run(scenario())
    assert "live view of" in gw.text()


def test_sdp_and_rtp_units() -> None:
    offer = live.sdp_offer("36012100002000000001", "10.0.0.5", 30000, "0121000001", "tcp")
    info = live.parse_sdp(offer)
    assert (info.host, info.port, info.transport, info.ssrc) == (
        "10.0.0.5",
        30000,
        "tcp",
        "0121000001",
    )
    assert b"a=setup:passive" in offer and info.rtpmap == {"96": "PS", "98": "H264"}
    with pytest.raises(live.SdpError):
        live.parse_sdp(b"v=0\r\ns=x\r\n")
    with pytest.raises(live.SdpError):
        live.parse_sdp(b"m=video 99999 RTP/AVP 96\r\n")
    with pytest.raises(live.SdpError):
        live.parse_sdp(b"m=video 1 RTP/AVP 96\r\n" + b"a=x\r\n" * 2000)
    pkt = live.rtp_packet(7, 1234, 121000001, b"payload")
    assert live.rtp_payload(pkt) == (7, 121000001, b"payload")
    assert live.rtp_payload(b"\x00" * 20) is None and live.rtp_payload(b"\x80") is None
    # late packets take their place; a gap is given up after REORDER packets
    r = live.Reorder()
    assert r.push(10, b"a") == [b"a"]
    assert r.push(12, b"c") == [] and r.push(11, b"b") == [b"b", b"c"]
    assert r.push(5, b"old") == [] and r.dropped == 1
    got = []
    for i in range(14, 14 + live.REORDER + 1):
        got += r.push(i, bytes([i]))
    assert got == [bytes([i]) for i in range(14, 14 + live.REORDER + 1)] and r.dropped == 2
    w = live.Reorder()
    assert w.push(0xFFFF, b"y") == [b"y"] and w.push(0, b"z") == [b"z"]  # sequence wraps
