"""Helpers every test area (and the benches) share: waiting on a state, stopping a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 30.0, every: float = 0.05) -> T:
    """Poll until check() is truthy; its value, or the last value when time runs out (so a
    failing assertion shows what was seen)."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = check()
    return value


def stop_child(proc: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL if it is still there after 15 s; nothing when it has ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class LoggedChild:
    """A child process writing to its own log file: read, stopped, or killed as a crash would."""

    log: Path
    proc: subprocess.Popen | None = None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_child(self.proc)


@contextmanager
def settings_env(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` while code reads the process's settings (get_settings, migrate,
    the CLI); each variable as it was afterwards."""
    from gridwatch.settings import get_settings

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
