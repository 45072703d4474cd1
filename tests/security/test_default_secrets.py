"""No default secrets outside a demo: serve and ingest refuse them off loopback, the README's old
defaults open nothing, generated secrets are private, and the local PostGIS wants a password."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import psycopg
import pytest

from gridwatch.secrets import load_secrets, weak_secrets
from gridwatch.settings import Settings, get_settings

pytestmark = pytest.mark.integration
OLD_KEY = "change-me-gridwatch-dev-secret"


def _said(res: subprocess.CompletedProcess) -> str:
    """What the command printed, as one line (rich wraps long messages)."""
    return " ".join((res.stdout + res.stderr).split())


def _gridwatch(args: list[str], **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "GRIDWATCH_DEMO"}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "gridwatch", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_refuses_the_old_default_key_off_loopback() -> None:
    res = _gridwatch(
        ["serve", "--port", "1"], GRIDWATCH_SECRET_KEY=OLD_KEY, GRIDWATCH_API_HOST="0.0.0.0"
    )
    assert res.returncode != 0
    assert "GRIDWATCH_SECRET_KEY is a published default" in _said(res)
    short = _gridwatch(["serve", "--port", "1", "--host", "0.0.0.0"], GRIDWATCH_SECRET_KEY="short")
    assert short.returncode != 0 and "characters" in _said(short)


def test_ingest_refuses_the_old_hub_password_on_a_remote_broker() -> None:
    url = "mqtt://gridwatch-hub:gridwatch-hub-secret@192.0.2.1:1883"
    res = _gridwatch(["ingest", "--max-seconds", "1"], GRIDWATCH_MQTT_URL=url)
    assert res.returncode == 2
    assert "GRIDWATCH_MQTT_URL is a published default" in _said(res)


def test_demo_flag_and_loopback_are_the_only_exceptions() -> None:
    from gridwatch.secrets import WeakSecretError, require_strong_secrets

    weak = Settings(secret_key=OLD_KEY, home=get_settings().home)
    with pytest.raises(WeakSecretError):
        require_strong_secrets(weak, "0.0.0.0", "serve")
    require_strong_secrets(weak, "127.0.0.1", "serve")  # loopback
    os.environ["GRIDWATCH_DEMO"] = "1"
    try:
        require_strong_secrets(weak, "0.0.0.0", "serve")
    finally:
        del os.environ["GRIDWATCH_DEMO"]


def test_generated_secrets_are_private_and_separate(tmp_path) -> None:
    s = Settings(home=tmp_path)
    data = load_secrets(tmp_path)
    mode = stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode)
    assert mode == 0o600
    assert s.secret_key == data["token_key"] and not weak_secrets(s)
    keys = [
        data["token_key"],
        data["device_key"],
        data["csrf_key"],
        data["sip_nonce_key"],
        data["pg_password"],
        *data["pg_roles"].values(),
        *data["mqtt"].values(),
    ]
    assert len(set(keys)) == len(keys)  # tokens and everything else use separate keys
    assert load_secrets(tmp_path) == data  # stable once made


def test_local_postgis_wants_the_generated_password(db_url) -> None:
    settings = get_settings()
    if not settings.local_database:
        pytest.skip("an external database's authentication is its own")
    conf = (settings.home / "pg" / "data" / "pg_hba.conf").read_text()
    if "trust" in [line.split()[-1] for line in conf.splitlines() if line and line[0] != "#"]:
        pytest.skip("this cluster was made before scram-sha-256 (reused GRIDWATCH_HOME)")
    plain = f"postgresql://gridwatch@127.0.0.1:{settings.pg_port}/postgres"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(plain, password="wrong-password", connect_timeout=5).close()
    good = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(good, connect_timeout=5) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert conn.execute("SHOW password_encryption").fetchone()[0] == "scram-sha-256"
