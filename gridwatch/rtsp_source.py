"""The demo's real RTSP cameras: tools/rtsp-demo-source (GStreamer's RTSP server) on a real clip."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from gridwatch.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "tools" / "rtsp-demo-source"
CLIP = PROJECT_ROOT / "tests" / "data" / "video" / "plaza_pets.mp4"  # real footage, see README
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi (not the project's venv)


DEMO_CAMERAS = 4


def argv(
    port: int, cache: Path, mounts: int = DEMO_CAMERAS, loops: int = 20, host: str = "127.0.0.1"
) -> list[str]:
    """The command line of the RTSP demo source."""
    return [SYSTEM_PYTHON, str(SCRIPT), "--clip", str(CLIP), "--cache", str(cache),
            "--host", host, "--port", str(port), "--mounts", str(mounts), "--loops", str(loops)]  # fmt: skip


def ensure_demo_streams(engine, region: str, port: int, n: int = DEMO_CAMERAS) -> list[str]:
    """Give n of the region's cameras (the first by id) the demo's RTSP URLs; idempotent, and
    moves them to `port` when it changed. Returns their ids."""
    from sqlalchemy import text

    with engine.begin() as conn:
        ids = (
            conn.execute(
                text(
                    "SELECT id FROM devices WHERE region_code LIKE :r AND kind IN ('ip_camera', "
                    "'camera') AND retired_at IS NULL AND position IS NOT NULL ORDER BY id LIMIT :n"
                ),
                {"r": region + "%", "n": n},
            )
            .scalars()
            .all()
        )
        for i, dev in enumerate(ids, start=1):
            conn.execute(
                text("UPDATE devices SET stream_url = :u WHERE id = :d"),
                {"u": f"rtsp://127.0.0.1:{port}/cam{i}", "d": dev},
            )
    return list(ids)


def missing() -> list[str]:
    """What the RTSP source needs and the machine lacks (empty when it can run)."""
    out = []
    if shutil.which("ffmpeg") is None:
        out.append("ffmpeg")
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); "
            "from gi.repository import GstRtspServer",
        ],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        out.append(
            "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
        )
    return out


def start(
    port: int,
    cache: Path,
    mounts: int = 4,
    loops: int = 20,
    host: str = "127.0.0.1",
    log: Path | None = None,
    timeout: float = 120.0,
) -> subprocess.Popen:
    """Start the server (the clip is encoded into `cache` on first use) and wait until it
    listens; rtsp://host:port/cam1 .. camN. Raises RuntimeError with its output if it fails."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv(port, cache, mounts, loops, host),
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    if log:
        out.close()  # type: ignore[union-attr]
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace") if log else ""
            raise RuntimeError(f"the RTSP demo source exited ({proc.returncode}): {text[-2000:]}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"the RTSP demo source did not listen on {host}:{port} in {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
