"""A small process supervisor for `gridwatch demo`: start children, watch them, stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    """One supervised child process and where its output goes."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    env: dict[str, str] = field(default_factory=dict)


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _terminate_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM a child's process group, then SIGKILL it if it is still there after timeout."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.1)
    if not _running(pid):
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Supervisor:
    """Starts gridwatch sub-commands as children, restarts one that dies, stops all on exit."""

    def __init__(self, log_dir: Path, max_restarts: int = 5) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.chmod(0o700)  # logs may name users and devices: not for other local users
        self.children: list[Child] = []
        self.max_restarts = max_restarts

    def gridwatch_argv(self, *args: str) -> list[str]:
        """argv that runs `gridwatch <args>` with this interpreter."""
        return [sys.executable, "-m", "gridwatch", *args]

    def add(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, self.log_dir / f"{name}.log", env=env or {})
        self.children.append(child)
        return child

    def pidfile(self, child: Child) -> Path:
        return self.log_dir / f"{child.name}.pid"

    def reap_leftovers(self) -> list[str]:
        """Stop children that an earlier run left behind (it was killed before it could stop them).

        Only a process whose PID file we wrote and whose command line is still exactly the one we
        started is touched, so a recycled PID never hits an unrelated program.
        """
        notes: list[str] = []
        for child in self.children:
            path = self.pidfile(child)
            try:
                pid_text, argv_text = path.read_text().split("\n", 1)
                pid = int(pid_text)
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
                continue
            if [a.decode(errors="replace") for a in cmdline if a] == argv_text.split("\0"):
                notes.append(
                    f"stopping the {child.name} left running by an earlier run (pid {pid})"
                )
                _terminate_group(pid)
            path.unlink(missing_ok=True)
        return notes

    def _spawn(self, child: Child) -> None:
        out = open(child.log, "ab")
        child.log.chmod(0o600)
        env = {**os.environ, **child.env}
        child.proc = subprocess.Popen(
            child.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C reaches us; we stop children in order
        )
        child.started_at = time.monotonic()
        self.pidfile(child).write_text(f"{child.proc.pid}\n" + "\0".join(child.argv))

    def start_all(self) -> None:
        for child in self.children:
            self._spawn(child)

    def poll(self) -> list[str]:
        """Restart children that died; returns messages for the person watching."""
        notes: list[str] = []
        for child in self.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            if child.restarts >= self.max_restarts:
                raise RuntimeError(
                    f"{child.name} keeps dying (exit {code}); see {child.log} for the reason"
                )
            child.restarts += 1
            notes.append(f"{child.name} exited with {code}; restarting (see {child.log})")
            self._spawn(child)
        return notes

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every child (in reverse start order), then SIGKILL what is left."""
        for child in reversed(self.children):
            if child.proc is not None and child.proc.poll() is None:
                try:
                    os.killpg(child.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for child in self.children:
            if child.proc is None:
                continue
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.proc.wait(remaining)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(child.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.proc.wait(5)
            self.pidfile(child).unlink(missing_ok=True)
