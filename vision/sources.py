"""Frame sources: streams and files decoded in an isolated child process, and JPEG snapshots.

Untrusted input (RTSP/HTTP streams, video files, snapshot JPEGs) is decoded in a separate
process started with multiprocessing's 'spawn' method. Frames come back through shared memory
(streams/files) or the pipe (small reduced snapshots). If the decoder crashes (OpenCV has
been seen to abort the whole process on a malformed AVI), hangs or errors, only the child
dies: the source notices, reports it, and reconnects with exponential back-off. While a
source has no picture, `read()` returns None and the caller reports signal loss.

Every frame is privacy-masked here, in the parent, before it is handed to anyone.
"""

from __future__ import annotations

import importlib
import importlib.util
import multiprocessing as mp
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from vision.frames import Frame

if TYPE_CHECKING:  # imported where used: a decoder child (a fresh interpreter) needs no pydantic
    from vision.privacy import PrivacyMask

Status = Literal["starting", "live", "reconnecting", "ended", "failed"]
MAX_FRAME_BYTES = 3840 * 2160 * 3
_CTX = mp.get_context("spawn")
NETWORK_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


class SourceError(RuntimeError):
    """A source that cannot deliver frames, with a readable reason."""


def exit_reason(code: int | None) -> str:
    """How a decoder process ended, for people: "decoder died: SIGABRT", "... exit code 3"."""
    if code is None:
        return "decoder died (exit status unknown)"
    if code < 0:
        try:
            return f"decoder died: {signal.Signals(-code).name}"
        except ValueError:
            return f"decoder died: signal {-code}"
    return f"decoder died: exit code {code}"


def open_capture(url: str) -> Any:
    """The default opener (runs in the child): OpenCV's FFmpeg backend with network timeouts."""
    params: list[int] = []
    if url.startswith(NETWORK_SCHEMES):
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        raise SourceError(f"cannot open {url!r} with OpenCV/FFmpeg")
    return cap


def _load(spec: str) -> Callable[[str], Any]:
    """An opener from "package.module:function" or "/path/to/file.py:function"."""
    mod, _, name = spec.rpartition(":")
    if mod.endswith(".py"):
        loc = importlib.util.spec_from_file_location(f"_opener_{abs(hash(mod))}", mod)
        if loc is None or loc.loader is None:
            raise SourceError(f"cannot load opener file {mod!r}")
        module = importlib.util.module_from_spec(loc)
        loc.loader.exec_module(module)
        return getattr(module, name)
    return getattr(importlib.import_module(mod), name)


def _child_main(opener: str, url: str, conn: Connection, shm_name: str, live: bool) -> None:
    """Decoder process: open, then answer "next" requests with frames in shared memory."""
    cv2.setNumThreads(1)
    shm = SharedMemory(name=shm_name)
    try:
        try:
            cap = _load(opener)(url)
        except Exception as exc:  # noqa: BLE001 - any failure to open is reported, not raised
            conn.send(("error", f"open failed: {exc}"))
            return
        conn.send(("opened",))
        latest: dict[str, Any] = {"frame": None, "seq": 0, "pts": None, "ts": 0.0, "err": None}
        lock = threading.Condition()
        if live:

            def reader() -> None:
                fails = 0
                while True:
                    try:
                        ok, img = cap.read()
                    except cv2.error as exc:
                        ok, img = False, None
                        latest["err"] = str(exc)
                    with lock:
                        if ok and img is not None:
                            fails = 0
                            latest.update(
                                frame=img, seq=latest["seq"] + 1, ts=time.time(), pts=_pts(cap)
                            )
                        else:
                            fails += 1
                            if fails >= 25:
                                latest["err"] = latest["err"] or "stream stopped delivering"
                        lock.notify_all()
                    if latest["err"]:
                        return
                    if not ok:
                        time.sleep(0.2)

            threading.Thread(target=reader, daemon=True).start()
        delivered = 0
        t0 = time.time()
        while True:
            msg = conn.recv()
            if msg[0] == "stop":
                return
            timeout = float(msg[1])
            if live:
                with lock:
                    lock.wait_for(partial(_fresh, latest, delivered), timeout)
                    if latest["err"]:
                        conn.send(("error", latest["err"]))
                        return
                    if latest["seq"] <= delivered:
                        conn.send(("none",))
                        continue
                    img, seq, ts, pts = latest["frame"], latest["seq"], latest["ts"], latest["pts"]
                delivered = seq
            else:
                try:
                    ok, img = cap.read()
                except cv2.error as exc:
                    conn.send(("error", f"decode failed: {exc}"))
                    return
                if not ok or img is None:
                    conn.send(("eof",))
                    continue
                delivered += 1
                seq, pts = delivered, _pts(cap)
                ts = t0 + (pts if pts is not None else delivered / 25.0)
            img = np.ascontiguousarray(img)
            if img.nbytes > shm.size:
                conn.send(("error", f"frame {img.shape} larger than {shm.size} bytes"))
                return
            np.ndarray(img.shape, img.dtype, buffer=shm.buf)[...] = img
            conn.send(("frame", img.shape, str(img.dtype), ts, pts, seq))
    finally:
        shm.close()


def _fresh(latest: dict[str, Any], delivered: int) -> bool:
    return bool(latest["seq"] > delivered or latest["err"])


def _pts(cap: Any) -> float | None:
    try:
        ms = float(cap.get(cv2.CAP_PROP_POS_MSEC))
    except Exception:  # noqa: BLE001 - a backend without timestamps
        return None
    return ms / 1000.0 if ms >= 0 else None


class IsolatedCapture:
    """A stream or file decoded in its own child process; frames come out privacy-masked.

    `read()` returns the next frame (files) or the newest frame (live streams), or None when
    there is none right now (connecting, reconnecting after a failure, ended). `status` and
    `last_error` say why ("decoder died: SIGABRT" when the decoder was killed by a signal).

    Restarts have a budget over time: up to `restart_budget` failures in `budget_window_s`
    restart after `backoff_s`; beyond that the delay doubles per extra failure up to
    `max_backoff_s`. Good frames in between do not reset the count, so a decoder that dies
    mid-stream over and over backs off. `max_failures` (total) ends the source as "failed".
    `read(wait=...)` bounds how long one call may block: a worker serving many cameras passes
    a small `wait`, so a slow, starting or dying decoder never delays the others.
    """

    def __init__(
        self,
        url: str,
        mask: PrivacyMask | None = None,
        live: bool | None = None,
        loop: bool = False,
        opener: str = "vision.sources:open_capture",
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        max_failures: int | None = None,
        restart_budget: int = 5,
        budget_window_s: float = 60.0,
        open_timeout_s: float = 15.0,
    ) -> None:
        self.url = url
        if mask is None:
            from vision.privacy import PrivacyMask

            mask = PrivacyMask()
        self.mask = mask
        self.live = url.startswith(NETWORK_SCHEMES) if live is None else live
        self.loop = loop
        self.opener = opener
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_failures = max_failures
        self.restart_budget = restart_budget
        self.budget_window_s = budget_window_s
        self.open_timeout_s = open_timeout_s
        self._fail_times: deque[float] = deque()
        self._open_deadline = 0.0
        self._pending_deadline: float | None = None
        self.status: Status = "starting"
        self.last_error: str | None = None
        self.failures = 0
        self.restarts = 0
        self._proc: Any = None
        self._conn: Connection | None = None
        self._shm: SharedMemory | None = None
        self._retry_at = 0.0

    # ---- lifecycle --------------------------------------------------------------------------

    def _start(self) -> None:
        if self._shm is None:
            self._shm = SharedMemory(create=True, size=MAX_FRAME_BYTES)
        parent, child = _CTX.Pipe()
        self._proc = _CTX.Process(
            target=_child_main,
            args=(self.opener, self.url, child, self._shm.name, self.live),
            daemon=True,
            name=f"decode:{self.url[:40]}",
        )
        self._proc.start()
        child.close()
        self._conn = parent
        self.status = "starting"
        self._open_deadline = time.monotonic() + self.open_timeout_s
        self._pending_deadline = None

    def _fail(self, reason: str) -> None:
        self.last_error = reason
        self.failures += 1
        self._stop_child(kill=True)
        if self.max_failures is not None and self.failures >= self.max_failures:
            self.status = "failed"
            return
        now = time.monotonic()
        self._fail_times.append(now)
        while self._fail_times and self._fail_times[0] < now - self.budget_window_s:
            self._fail_times.popleft()
        over = len(self._fail_times) - self.restart_budget
        delay = self.backoff_s if over <= 0 else self.backoff_s * 2**over
        delay = min(self.max_backoff_s, delay)
        self._retry_at = now + delay * random.uniform(0.8, 1.2)
        self.status = "reconnecting"

    def _died(self) -> str:
        """The reason of a child that went away (its exit signal or code)."""
        proc = self._proc
        code = None
        if proc is not None:
            proc.join(0.5)
            code = proc.exitcode
        return exit_reason(code)

    def _stop_child(self, kill: bool = False) -> None:
        if self._conn is not None:
            try:
                if not kill:
                    self._conn.send(("stop",))
            except (OSError, BrokenPipeError):
                pass
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(0.5 if not kill else 0.05)
            code = self._proc.exitcode
            if not kill and code not in (None, 0) and self.status != "failed":
                # It died on its own before we asked it to stop: say so, never "fine".
                self.last_error = exit_reason(code)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(1.0)
            self._proc = None

    def close(self) -> None:
        """Stop the child and free the shared memory."""
        self._stop_child()
        if self._shm is not None:
            self._shm.close()
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass
            self._shm = None
        if self.status not in ("failed",):
            self.status = "ended"

    def __enter__(self) -> IsolatedCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def child_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ---- reading ----------------------------------------------------------------------------

    def read(self, timeout: float = 5.0, wait: float | None = None) -> Frame | None:
        """The next/newest frame, or None (see `status`).

        `timeout`: how long the decoder may take for one frame before it counts as hung
        (+1 s). `wait`: how long this call may block (default: the whole timeout); with a
        short wait a frame not ready yet is picked up by a later call.
        """
        if self.status in ("ended", "failed"):
            return None
        if self._proc is None:
            if self.status == "reconnecting" and time.monotonic() < self._retry_at:
                return None
            if self.status == "reconnecting":
                self.restarts += 1
            self._start()
        assert self._conn is not None and self._proc is not None
        block = timeout + 1.0 if wait is None else max(0.0, wait)
        try:
            if self.status == "starting":
                left = self._open_deadline - time.monotonic()
                if not self._conn.poll(max(0.0, left if wait is None else min(block, left))):
                    if self._proc.exitcode is not None:  # died before it could even say so
                        self._fail(self._died())
                    elif time.monotonic() >= self._open_deadline:
                        self._fail("decoder did not open the source in time")
                    return None
                msg = self._conn.recv()
                if msg[0] != "opened":
                    self._fail(str(msg[1]) if len(msg) > 1 else "open failed")
                    return None
                self.status = "live"
            if self._pending_deadline is None:
                self._conn.send(("next", timeout))
                self._pending_deadline = time.monotonic() + timeout + 1.0
            if not self._conn.poll(block):
                if self._proc.exitcode is not None:
                    self._fail(self._died())
                elif time.monotonic() >= self._pending_deadline:
                    self._fail(f"decoder gave no frame within {timeout + 1.0:.1f} s (hung?)")
                return None
            msg = self._conn.recv()
            self._pending_deadline = None
        except (EOFError, OSError, BrokenPipeError):
            self._fail(self._died())
            return None
        kind = msg[0]
        if kind == "frame":
            _, shape, dtype, ts, pts, seq = msg
            assert self._shm is not None
            img = np.ndarray(shape, np.dtype(dtype), buffer=self._shm.buf).copy()
            self.mask.apply(img)
            return Frame(image=img, ts=float(ts), pts=pts, seq=int(seq))
        if kind == "none":
            return None
        if kind == "eof":
            if self.loop:
                self._stop_child()
                self.status = "starting"
                return None
            self._stop_child()
            self.status = "ended"
            return None
        self._fail(str(msg[1]) if len(msg) > 1 else "decoder error")
        return None


# ---- JPEG snapshots --------------------------------------------------------------------------

REDUCE_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
REDUCE_GREY = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF marker without decoding, or None."""
    i, n = 2, len(data)
    if n < 4 or data[:2] != b"\xff\xd8":
        return None
    while i + 9 < n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return (w, h) if w and h else None
        i += 2 + seg
    return None


def decode_jpeg(data: bytes, reduce: int = 4, colour: bool = True) -> np.ndarray | None:
    """Decode a JPEG at 1/reduce size (DCT-domain scaling: much faster); None if undecodable."""
    flags = (REDUCE_FLAGS if colour else REDUCE_GREY)[reduce]
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    return img if img is not None and img.size else None


def _snapshot_child(conn: Connection) -> None:
    cv2.setNumThreads(1)
    conn.send_bytes(b"ready")  # started and imported: from now on a timeout is a hung decode
    while True:
        try:
            msg = conn.recv_bytes()
        except EOFError:
            return
        reduce, colour = msg[0], bool(msg[1])
        try:
            img = decode_jpeg(msg[2:], reduce, colour)
        except cv2.error:
            img = None
        if img is None:
            conn.send(None)
        else:
            conn.send((img.shape, img.tobytes()))


class SnapshotDecoder:
    """Decodes untrusted JPEG snapshots in a child process (restarted if it dies).

    Returns the image reduced by `reduce` (1, 2, 4 or 8) and privacy-masked; None for bytes
    that do not decode (or a decoder that crashed or hung on them).

    `timeout_s` bounds one decode; a fresh child first has `start_timeout_s` to start (a new
    interpreter importing OpenCV: seconds on a loaded machine), so a slow start is never taken
    for a JPEG the decoder hung on.
    """

    def __init__(
        self,
        reduce: int = 4,
        colour: bool = True,
        timeout_s: float = 5.0,
        start_timeout_s: float = 60.0,
    ) -> None:
        if reduce not in REDUCE_FLAGS:
            raise ValueError(f"reduce must be one of {sorted(REDUCE_FLAGS)}, not {reduce}")
        self.reduce = reduce
        self.colour = colour
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.crashes = 0
        self._proc: Any = None
        self._conn: Connection | None = None

    def _ensure(self) -> Connection:
        if self._proc is None or not self._proc.is_alive():
            parent, child = _CTX.Pipe()
            self._proc = _CTX.Process(
                target=_snapshot_child, args=(child,), daemon=True, name="decode:snapshots"
            )
            self._proc.start()
            child.close()
            self._conn = parent
            if not parent.poll(self.start_timeout_s) or parent.recv_bytes() != b"ready":
                raise TimeoutError
        assert self._conn is not None
        return self._conn

    def decode(self, data: bytes, mask: PrivacyMask | None = None) -> np.ndarray | None:
        """The masked, reduced image of one JPEG, or None."""
        try:
            conn = self._ensure()
            conn.send_bytes(bytes([self.reduce, int(self.colour)]) + data)
            if not conn.poll(self.timeout_s):
                raise TimeoutError
            out = conn.recv()
        except (EOFError, OSError, BrokenPipeError, TimeoutError):
            self.crashes += 1
            self._restart()
            return None
        if out is None:
            return None
        shape, raw = out
        img = np.frombuffer(raw, np.uint8).reshape(shape).copy()
        if mask:
            mask.apply(img)
        return img

    def _restart(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(1.0)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def close(self) -> None:
        """Stop the decoder process."""
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            self._proc.join(1.0)
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = self._conn = None
