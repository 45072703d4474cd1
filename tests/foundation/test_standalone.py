"""The repository stands alone: no file in it points at anything beside or above the checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces so this file does not match itself.
OUTSIDE = ("../" + "shared", "/work" + "/")


def test_no_tracked_file_refers_outside_the_repository() -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    offenders = []
    for name in filter(None, files):
        path = ROOT / name.decode()
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        offenders += [f"{name.decode()}: {s}" for s in OUTSIDE if s in text]
    assert not offenders, offenders
