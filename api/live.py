"""Live view: one FFmpeg per watched camera (RTSP in, HLS out), capped, stopped when nobody watches."""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

SCHEMES = ("rtsp", "rtsps")
GB28181_SOURCE = "gb28181:"  # a stream's source when it is a GB/T 28181 live session, not a URL
SEGMENT_NAME = re.compile(r"^(index\.m3u8|seg[0-9]{1,9}\.ts)$")
PLAYLIST = "index.m3u8"
MAX_VIEWERS = 32  # per camera
STARTUP_GRACE_S = 15.0  # a transcode waiting for its first segment keeps its viewers this long


class LiveError(Exception):
    """Why a live view cannot start: code (stable, translated by the pages) and status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def check_stream_url(url: str) -> str:
    """An RTSP(S) URL with a host; anything else (file:, http:, concat:...) is refused, so a stored
    stream URL can never make FFmpeg read the hub's own files."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname or len(url) > 1000:
        raise LiveError(422, "bad_stream_url", "the camera's stream URL is not rtsp:// or rtsps://")
    return url


# RTSP over TCP, a 5 s I/O timeout; probing stops after 1 s / 1 MB (the default 5 s made the
# first frame wait ~3.4 s on the demo camera, 1.8 s with these; see bench/RESULTS.md).
INPUT_OPTIONS = [
    "-rtsp_transport", "tcp", "-timeout", "5000000",
    "-analyzeduration", "1000000", "-probesize", "1000000",
]  # fmt: skip


# A segment ends at the first key frame at least this far in. With a 1 s target the demo camera's
# first segment (key frames every second) ran to 1.9 s: its second key frame came a hair before
# 1 s after the first frame, so the cut waited for the third; the first segment was listed 2.3 s
# after FFmpeg started. With 0.5 s it ends at the second key frame (listed after 1.5 s); later
# segments are one GOP long either way (see bench/RESULTS.md).
HLS_TIME_S = 0.5


def ffmpeg_args(url: str, out: Path, video: str = "copy") -> list[str]:
    """FFmpeg reading the camera over RTSP (TCP, 5 s I/O timeout, RTSP protocols only) and
    writing a short rolling HLS playlist into `out`, a segment per GOP (at least HLS_TIME_S)."""
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
        "-protocol_whitelist", "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
        *INPUT_OPTIONS,
        "-i", url, *hls_output(out, video),
    ]  # fmt: skip


# A GB/T 28181 channel's MPEG-PS as gb28181.live.live_input serves it on 127.0.0.1 (the same
# 1 s / 1 MB probing as RTSP)
PS_INPUT_OPTIONS = ["-f", "mpeg", "-analyzeduration", "1000000", "-probesize", "1000000"]


def ps_ffmpeg_args(url: str, out: Path, video: str = "copy") -> list[str]:
    """FFmpeg reading the MPEG-PS of a GB/T 28181 live session (tcp://127.0.0.1 only) into HLS."""
    if not url.startswith("tcp://127.0.0.1:"):
        raise LiveError(500, "error", "a GB/T 28181 session is read from 127.0.0.1 only")
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
        "-protocol_whitelist", "tcp", *PS_INPUT_OPTIONS,
        "-i", url, *hls_output(out, video),
    ]  # fmt: skip


def gb_command(device_id: str, out: Path, video: str = "copy") -> list[str]:
    """The process that watches a GB/T 28181 channel: it asks the channel's gateway for the live
    session (INVITE), runs FFmpeg on it into `out` and hangs up (BYE) when it is stopped."""
    return [sys.executable, "-m", "api.live_gb", device_id, str(out), video]


def hls_output(out: Path, video: str = "copy") -> list[str]:
    """The output side: the first video stream, copied or re-encoded, as a rolling HLS playlist."""
    codec = (
        ["-c:v", "copy"]
        if video == "copy"
        else [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "25",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
        ]  # fmt: skip
    )
    return [
        "-map", "0:v:0", "-an", *codec,
        "-f", "hls", "-hls_time", str(HLS_TIME_S), "-hls_list_size", "6",
        "-hls_flags", "delete_segments+independent_segments+omit_endlist+temp_file",
        "-hls_segment_filename", str(out / "seg%d.ts"), str(out / PLAYLIST),
    ]  # fmt: skip


@dataclass
class Stream:
    """One camera being transcoded: its FFmpeg, its HLS directory and who is watching."""

    device_id: str
    url: str
    directory: Path
    proc: subprocess.Popen
    started_at: float = field(default_factory=time.monotonic)
    viewers: dict[str, float] = field(default_factory=dict)  # viewer -> last fetch (monotonic)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready(self) -> bool:
        playlist = self.directory / PLAYLIST
        try:
            return "#EXTINF" in playlist.read_text("utf-8", errors="replace")
        except OSError:
            return False


class LiveStreams:
    """The API worker's transcodes: at most `max_transcodes`, each stopped `idle_s` after its
    last viewer stopped fetching, or at once when the last viewer closes it."""

    def __init__(self, root: Path, max_transcodes: int, idle_s: float, video: str = "copy"):
        self.root = root
        self.max_transcodes = max_transcodes
        self.idle_s = idle_s
        self.video = video
        self._lock = threading.Lock()
        self._streams: dict[str, Stream] = {}
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # ------------------------------------------------------------------ viewers
    def open(self, device_id: str, url: str | None, gb28181: bool = False) -> tuple[str, Stream]:
        """A new viewer of the camera: joins its running transcode or starts one. The camera's
        RTSP URL, or with gb28181=True its GB/T 28181 live session (the URL is ignored)."""
        if self.max_transcodes <= 0:
            raise LiveError(503, "live_disabled", "live view is turned off on this hub")
        if shutil.which("ffmpeg") is None:
            raise LiveError(503, "live_unavailable", "FFmpeg is not installed on the hub")
        url = GB28181_SOURCE + device_id if gb28181 else check_stream_url(url or "")
        viewer = secrets.token_urlsafe(12)
        with self._lock:
            s = self._streams.get(device_id)
            if s is not None and (not s.alive() or s.url != url):
                self._stop_locked(device_id)
                s = None
            if s is None:
                running = sum(1 for x in self._streams.values() if x.alive())
                if running >= self.max_transcodes:
                    raise LiveError(
                        503,
                        "live_busy",
                        f"{running} cameras are being watched live, the most this hub allows "
                        "(GRIDWATCH_LIVE_MAX_TRANSCODES); close one or try again later",
                    )
                s = self._start_locked(device_id, url)
            if len(s.viewers) >= MAX_VIEWERS:
                raise LiveError(503, "live_busy", "too many viewers of this camera")
            s.viewers[viewer] = time.monotonic()
        self._ensure_reaper()
        return viewer, s

    def touch(self, device_id: str, viewer: str) -> Stream | None:
        """The viewer fetched something: keep its transcode; None if it is not watching."""
        with self._lock:
            s = self._streams.get(device_id)
            if s is None or viewer not in s.viewers:
                return None
            s.viewers[viewer] = time.monotonic()
            return s

    def close(self, device_id: str, viewer: str) -> bool:
        """The viewer left; the last one leaving stops the camera's FFmpeg at once."""
        with self._lock:
            s = self._streams.get(device_id)
            if s is None or s.viewers.pop(viewer, None) is None:
                return False
            if not s.viewers:
                self._stop_locked(device_id)
            return True

    def wait_ready(self, stream: Stream, timeout: float) -> bool:
        """Block until the first segment is listed (True), FFmpeg exits or the time is up."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if stream.ready():
                with self._lock:  # the viewers' idle time starts now
                    for viewer in stream.viewers:
                        stream.viewers[viewer] = time.monotonic()
                return True
            if not stream.alive():
                return False
            time.sleep(0.05)
        return stream.ready()

    def running(self) -> dict[str, int]:
        """Cameras being transcoded and how many viewers each has."""
        with self._lock:
            return {d: len(s.viewers) for d, s in self._streams.items() if s.alive()}

    def pid(self, device_id: str) -> int | None:
        with self._lock:
            s = self._streams.get(device_id)
            return s.proc.pid if s is not None and s.alive() else None

    # ------------------------------------------------------------------ processes
    def _start_locked(self, device_id: str, url: str) -> Stream:
        directory = self.root / device_id
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, mode=0o700)
        errors = open(directory / "ffmpeg.log", "wb")  # noqa: SIM115 - handed to the child
        try:
            command = (
                gb_command(device_id, directory, self.video)
                if url.startswith(GB28181_SOURCE)
                else ffmpeg_args(url, directory, self.video)
            )
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
        finally:
            errors.close()
        log.info("live view: FFmpeg %s started for %s", proc.pid, device_id)
        s = Stream(device_id=device_id, url=url, directory=directory, proc=proc)
        self._streams[device_id] = s
        return s

    def _stop_locked(self, device_id: str) -> None:
        s = self._streams.pop(device_id, None)
        if s is None:
            return
        if s.alive():
            s.proc.terminate()
            try:  # a GB/T 28181 session also hangs up over the broker before it exits
                s.proc.wait(timeout=8 if s.url.startswith(GB28181_SOURCE) else 3)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait(timeout=3)
        log.info("live view: FFmpeg %s for %s stopped", s.proc.pid, device_id)
        shutil.rmtree(s.directory, ignore_errors=True)

    def reap(self) -> None:
        """Drop viewers that stopped fetching; stop transcodes with none left or that died."""
        now = time.monotonic()
        with self._lock:
            for device_id, s in list(self._streams.items()):
                if s.alive() and now - s.started_at < STARTUP_GRACE_S and not s.ready():
                    continue  # viewers wait for the first segment before they fetch anything
                for viewer, seen in list(s.viewers.items()):
                    if now - seen > self.idle_s:
                        del s.viewers[viewer]
                if not s.viewers or not s.alive():
                    self._stop_locked(device_id)

    def _ensure_reaper(self) -> None:
        with self._lock:
            if self._reaper is not None and self._reaper.is_alive():
                return
            self._reaper = threading.Thread(target=self._reap_loop, name="live-reaper", daemon=True)
            self._reaper.start()

    def _reap_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.reap()
            except Exception:  # never let one bad stream end the reaper
                log.exception("live view: reaping failed")

    def stop_all(self) -> None:
        """Stop every FFmpeg (the API is shutting down)."""
        self._stop.set()
        with self._lock:
            for device_id in list(self._streams):
                self._stop_locked(device_id)
