"""Live view end to end: the console's live_input() asks the gateway (over the broker) to INVITE
a simulated NVR's channel; the channel sends RTP/PS (real H.264 from FFmpeg) over UDP or TCP;
FFmpeg decodes what live_input serves; leaving the block sends BYE."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from gb28181 import live
from simulators.sip_device import Channel, SimDevice, SimEndpoint
from tests.gb28181.conftest import DOMAIN, PASSWORD, free_port, new_id, run
from tests.gb28181.sipp import available as sipp_available
from tests.gb28181.sipp import live_uas_xml
from tests.gb28181.test_gateway_flow import q, until


def _decode(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-probesize", "65536", "-analyzeduration", "2000000",
         "-f", "mpeg", "-i", url, "-frames:v", "15", "-f", "null", "-"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip


async def _online(ep, dev, chan, engine) -> None:
    """Register the simulated NVR and wait until its channel is stored and granted (its
    heartbeat made it online)."""
    assert await ep.register(dev) == 200
    assert await until(
        lambda: (
            q(engine, "SELECT status FROM devices WHERE id = :i", i=chan.device_id) == [("online",)]
        ),
        180,  # a catalog on a loaded machine
    )


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
            await _online(ep, dev, chan, engine)
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
            assert await until(lambda: chan.device_id in ep.bye_received, 60)
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


@pytest.mark.skipif(not sipp_available(), reason="SIPp (Debian sip-tester) is not installed")
def test_live_view_signalling_against_sipp(
    gateway, register, start_worker, engine, tmp_path
) -> None:
    """The real SIP peer for INVITE/ACK/BYE: SIPp plays the NVR's side of live view on the
    address the NVR registered from (registered and catalogued by the simulated device)."""
    start_worker()
    gw = gateway()
    nvr = register(118)
    chan = Channel(new_id(132), "SIPp 通道", 115.9, 28.68)
    dev = SimDevice(nvr, PASSWORD, channels=[chan])
    scenario = tmp_path / "live_uas.xml"
    scenario.write_bytes(live_uas_xml())

    async def scenario_run() -> None:
        # a port outside the ephemeral range: SIPp binds it once the simulator lets it go, and
        # one drawn by binding port 0 was taken in between (CI: SIPp "Unable to bind main
        # socket, errno = 98")
        ep = await SimEndpoint(("127.0.0.1", gw.port), DOMAIN, local_port=free_port()).open()
        ep.add(dev)
        try:
            await _online(ep, dev, chan, engine)
        finally:
            ep.close()
        port = ep.local[1]  # SIPp takes over the NVR's address
        sipp = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(scenario), "-m", "1", "-t", "u1", "-i", "127.0.0.1",
            "-p", str(port), "-timeout", "90s", "-timeout_error", "-nostdin", "-trace_msg",
            "-trace_err", cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        await asyncio.sleep(1.0)  # SIPp is listening
        async with live.live_input(chan.device_id) as view:
            await asyncio.sleep(2.0)
        out, _ = await asyncio.wait_for(sipp.communicate(), 90)
        trace = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_messages.log"))
        assert sipp.returncode == 0, out.decode(errors="replace")[-3000:] + trace[-3000:]
        assert f"INVITE sip:{chan.device_id}@127.0.0.1:{port} SIP/2.0" in trace
        assert f"Subject: {chan.device_id}:{view.ssrc}," in trace
        assert f"m=video {view.rtp_port} RTP/AVP 96 98" in trace and f"y={view.ssrc}" in trace
        assert "ACK sip:" in trace and "BYE sip:" in trace

    run(scenario_run())


def test_console_live_view_of_a_channel_is_hls(gateway, register, start_worker, engine, tmp_path):
    """The console's live view (api.live) on a GB/T 28181 channel without a stream URL: its
    process asks the gateway for the session, FFmpeg writes HLS of the channel's real H.264, and
    the last viewer leaving stops it and hangs up (BYE)."""
    from api.live import LiveStreams

    start_worker()
    gw = gateway()
    nvr = register(118)
    chan = Channel(new_id(132), "控制台通道", 115.9, 28.68)
    dev = SimDevice(nvr, PASSWORD, channels=[chan])
    streams = LiveStreams(tmp_path / "live", max_transcodes=2, idle_s=30)

    async def scenario() -> None:
        ep = await SimEndpoint(("127.0.0.1", gw.port), DOMAIN).open()
        ep.add(dev)
        try:
            await _online(ep, dev, chan, engine)
            viewer, stream = streams.open(chan.device_id, None, gb28181=True)
            ready = await asyncio.to_thread(streams.wait_ready, stream, 60)
            log = (stream.directory / "ffmpeg.log").read_text(errors="replace")
            assert ready, log[-2000:]
            segment = sorted(stream.directory.glob("seg*.ts"))[0]
            probe = await asyncio.to_thread(
                subprocess.run,
                ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                 "-of", "csv=p=0", str(segment)],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            found = {line for line in probe.stdout.splitlines() if line.strip()}
            assert found == {"h264,320,240"}, probe.stdout + probe.stderr  # the channel's video
            # the last viewer leaving stops it at once (off the loop: the NVR answers the BYE)
            assert await asyncio.to_thread(streams.close, chan.device_id, viewer)
            assert streams.running() == {}
            assert await until(lambda: chan.device_id in ep.bye_received, 60)
        finally:
            streams.stop_all()
            ep.close()
            for s in ep.streams.values():
                if s.task is not None:
                    await asyncio.wait_for(s.task, 20)

    run(scenario())
