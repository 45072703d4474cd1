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
        [SYSTEM_PYTHON, str(SCRIPT), "--clip", str(CLIP), "--cache", str(cache),
         "--host", host, "--port", str(port), "--mounts", str(mounts), "--loops", str(loops)],
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
