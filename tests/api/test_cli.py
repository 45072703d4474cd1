"""`gridwatch users add/list` and `gridwatch serve --help` through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid


def gw(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gridwatch", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_users_add_and_list(db_url, places):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    out = gw(
        "users",
        "add",
        name,
        "--role",
        "installer",
        "--region",
        "360983",
        "--json",
        env={"GRIDWATCH_NEW_PASSWORD": "cli-pass-123"},
    )
    assert out.returncode == 0, out.stderr
    user = json.loads(out.stdout)
    assert user["role"] == "installer" and user["regions"] == ["360983000000"]
    listed = json.loads(gw("users", "list", "--json").stdout)
    assert name in [u["username"] for u in listed]
    again = gw(
        "users",
        "add",
        name,
        "--role",
        "installer",
        "--region",
        "360983",
        env={"GRIDWATCH_NEW_PASSWORD": "cli-pass-123"},
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = gw(
        "users",
        "add",
        f"{name}x",
        "--role",
        "chief",
        env={"GRIDWATCH_NEW_PASSWORD": "cli-pass-123"},
    )
    assert bad.returncode == 2 and "role" in bad.stderr


def test_serve_help():
    out = gw("serve", "--help")
    assert out.returncode == 0 and "--port" in out.stdout
