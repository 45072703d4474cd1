"""The demo's supervisor: children restarted when they die, leftovers of a killed run reaped."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gridwatch.supervisor import Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def test_leftover_child_of_a_killed_run_is_stopped(tmp_path) -> None:
    first = Supervisor(tmp_path)
    first.add("worker", SLEEPER)
    first.start_all()
    pid = first.children[0].proc.pid
    cmdline = Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not cmdline.read_bytes():
        time.sleep(0.01)  # until the child has exec'd, as a real leftover long has
    # the first supervisor "crashes": it never calls stop_all
    second = Supervisor(tmp_path)
    second.add("worker", SLEEPER)
    notes = second.reap_leftovers()
    first.children[0].proc.wait(15)
    assert any(f"pid {pid}" in n for n in notes)
    assert not (tmp_path / "worker.pid").exists()


def test_unrelated_process_with_a_recycled_pid_is_left_alone(tmp_path) -> None:
    import subprocess

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "unrelated"])
    try:
        (tmp_path / "worker.pid").write_text(f"{other.pid}\n" + "\0".join(SLEEPER))
        sup = Supervisor(tmp_path)
        sup.add("worker", SLEEPER)
        assert sup.reap_leftovers() == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_dead_child_is_restarted_and_all_stop(tmp_path) -> None:
    sup = Supervisor(tmp_path, max_restarts=2)
    sup.add("quitter", [sys.executable, "-c", "raise SystemExit(3)"])
    sup.add("sleeper", SLEEPER)
    sup.start_all()
    sup.children[0].proc.wait(15)
    notes = sup.poll()
    assert any("quitter exited with 3" in n for n in notes)
    assert sup.children[0].restarts == 1
    sleeper = sup.children[1].proc
    sup.stop_all()
    assert sleeper.poll() is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (tmp_path / "sleeper.pid").exists():
        time.sleep(0.05)
    assert not (tmp_path / "sleeper.pid").exists()
