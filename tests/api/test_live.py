"""Live view through the API: FFmpeg on a real RTSP server's stream, HLS out, capped, stopped."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import text

from api.live import LiveError, LiveStreams, check_stream_url, ffmpeg_args
from tests.api.fixtures import device_id
from tests.support import wait_for

pytestmark = pytest.mark.integration


def test_only_rtsp_urls_reach_ffmpeg(tmp_path):
    assert check_stream_url("rtsp://cam.lan:554/ch1") == "rtsp://cam.lan:554/ch1"
    for bad in (
        "file:///etc/passwd",
        "http://x/y.m3u8",
        "concat:a|b",
        "rtsp:///nohost",
        "/tmp/a",
        "gb28181:36098300001320000001",  # a stored URL never picks the GB/T 28181 path
    ):
        with pytest.raises(LiveError) as err:
            check_stream_url(bad)
        assert err.value.code == "bad_stream_url"
    args = ffmpeg_args("rtsp://cam.lan/1", tmp_path)
    whitelist = args[args.index("-protocol_whitelist") + 1]
    assert "file" not in whitelist.split(",") and "http" not in whitelist.split(",")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        return "Z" not in open(f"/proc/{pid}/stat").read().split(")")[1].split()[0]
    except OSError:
        return False


@pytest.fixture(scope="module")
def cameras(client, headers, engine, rtsp_source):
    ids = []
    for n in range(3):
        body = {"id": device_id(), "lon": 115.3701 + n * 0.0002, "lat": 28.3701, "focal_mm": 4}
        r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
        assert r.status_code == 201, r.text
        ids.append(body["id"])
    with engine.begin() as conn:
        for n, dev in enumerate(ids[:2]):
            conn.execute(
                text("UPDATE devices SET stream_url = :u WHERE id = :d"),
                {"u": f"{rtsp_source}/cam{n + 1}", "d": dev},
            )
        conn.execute(
            text("UPDATE devices SET stream_url = 'file:///etc/passwd' WHERE id = :d"),
            {"d": ids[2]},
        )
    return ids


@pytest.fixture()
def live(client, tmp_path):
    """A fresh set of transcodes for the in-process API: at most 1, idle after 1.5 s."""
    old = getattr(client.app.state, "live", None)
    streams = LiveStreams(tmp_path / "live", max_transcodes=1, idle_s=1.5)
    client.app.state.live = streams
    yield streams
    streams.stop_all()
    client.app.state.live = old


def test_live_view_serves_hls_and_stops_with_the_last_viewer(client, headers, cameras, live):
    h = headers["t-operator"]
    r = client.post(f"/api/v1/devices/{cameras[0]}/live", headers=h)
    assert r.status_code == 201, r.text
    v = r.json()
    pid = live.pid(cameras[0])
    assert pid and _alive(pid)
    playlist = client.get(v["playlist"], headers=h)
    assert playlist.status_code == 200 and "#EXTINF" in playlist.text
    assert playlist.headers["cache-control"] == "no-store"
    segment = next(line for line in playlist.text.splitlines() if line.endswith(".ts"))
    seg = client.get(v["playlist"].rsplit("/", 1)[0] + "/" + segment, headers=h)
    assert seg.status_code == 200 and seg.headers["content-type"] == "video/mp2t"
    assert seg.content[:1] == b"\x47" and len(seg.content) > 1000  # MPEG-TS sync byte
    # a second viewer joins the same FFmpeg; the first leaving keeps it
    second = client.post(f"/api/v1/devices/{cameras[0]}/live", headers=h).json()
    assert live.pid(cameras[0]) == pid and live.running() == {cameras[0]: 2}
    assert client.delete(v["url"], headers=h).status_code == 204
    assert _alive(pid)
    assert client.get(v["playlist"], headers=h).json()["code"] == "live_ended"
    # the last one leaving stops it at once
    assert client.delete(second["url"], headers=h).status_code == 204
    assert wait_for(lambda: not _alive(pid), 5) and live.running() == {}


def test_live_view_is_capped_and_idle_ones_stop(client, headers, cameras, live):
    h = headers["t-operator"]
    first = client.post(f"/api/v1/devices/{cameras[0]}/live", headers=h)
    assert first.status_code == 201, first.text
    pid = live.pid(cameras[0])
    busy = client.post(f"/api/v1/devices/{cameras[1]}/live", headers=h)
    assert busy.status_code == 503 and busy.json()["code"] == "live_busy"
    # nobody fetches: the reaper stops it after idle_s
    assert wait_for(lambda: not _alive(pid), 10)
    assert live.running() == {}
    again = client.post(f"/api/v1/devices/{cameras[1]}/live", headers=h)
    assert again.status_code == 201, again.text
    time.sleep(0.1)
    client.delete(again.json()["url"], headers=h)


def test_live_view_refuses_what_it_must(client, headers, cameras, live, engine):
    h = headers["t-operator"]
    r = client.post(f"/api/v1/devices/{cameras[2]}/live", headers=h)
    assert r.status_code == 422 and r.json()["code"] == "bad_stream_url"
    assert live.running() == {}  # no FFmpeg was started on a file URL
    plain = device_id()
    assert client.post(
        "/api/v1/devices",
        headers=headers["t-installer"],
        json={"id": plain, "lon": 115.37, "lat": 28.37},
    ).is_success
    r = client.post(f"/api/v1/devices/{plain}/live", headers=h)
    assert r.status_code == 404 and r.json()["code"] == "no_stream"
    assert client.get(f"/api/v1/devices/{plain}", headers=h).json()["has_stream"] is False
    # a GB/T 28181 channel plays through its gateway; with none answering: 504, nothing left
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO gb_devices (device_id) VALUES (:d)"), {"d": plain})
    assert client.get(f"/api/v1/devices/{plain}", headers=h).json()["has_stream"] is True
    r = client.post(f"/api/v1/devices/{plain}/live", headers=h)
    assert r.status_code == 504 and r.json()["code"] == "no_picture"
    assert live.running() == {}
    assert client.post(f"/api/v1/devices/{cameras[0]}/live").status_code == 401
    assert (
        client.post(
            f"/api/v1/devices/{cameras[0]}/live", headers=headers["t-installer-b"]
        ).status_code
        == 403
    )
    r = client.get(f"/api/v1/live/{cameras[0]}/AAAAAAAAAAAAAAAA/index.m3u8", headers=h)
    assert r.status_code == 404 and r.json()["code"] == "live_ended"
    r = client.get(f"/api/v1/live/{cameras[0]}/AAAAAAAAAAAAAAAA/..%2Fsecrets.json", headers=h)
    assert r.status_code in (404, 422)


def test_demo_cameras_get_the_demo_streams(client, headers, engine):
    from gridwatch.rtsp_source import ensure_demo_streams
    from tests.api.fixtures import COUNTY_B, VILLAGE_B1

    mine = []
    for n in range(2):
        body = {"id": device_id(COUNTY_B), "lon": 114.95 + n * 0.001, "lat": 27.80, "focal_mm": 4}
        r = client.post("/api/v1/devices", headers=headers["t-installer-b"], json=body)
        assert r.status_code == 201, r.text
        mine.append(body["id"])
    try:
        ids = ensure_demo_streams(engine, VILLAGE_B1, 1234, n=50)
        assert set(mine) <= set(ids)
        ids = ensure_demo_streams(engine, VILLAGE_B1, 4321, n=50)  # again, on another port
        with engine.connect() as conn:
            urls = dict(
                conn.execute(
                    text("SELECT id, stream_url FROM devices WHERE id = ANY(:ids)"), {"ids": ids}
                ).all()
            )
        assert sorted(urls.values()) == sorted(
            f"rtsp://127.0.0.1:4321/cam{i}" for i in range(1, len(ids) + 1)
        )
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE devices SET stream_url = NULL WHERE id = ANY(:ids)"), {"ids": ids}
            )
