"""Busy local ports: who holds them (read from /proc), and `services up` naming that process."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridwatch.cli import app
from gridwatch.ports import describe_port_holder, ephemeral_range, parse_proc_net_tcp, port_blocked
from gridwatch.services import mosquitto_binary
from gridwatch.settings import Settings, get_settings

# Two lines of a real /proc/net/tcp and /proc/net/tcp6 (a listener and a connection).
PROC_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:6338 00000000:0000 0A 00000000:00000000 00:00000000 00000000   108        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:6338 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1
"""
PROC_TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:6338 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
"""


def test_proc_net_tcp_lines_are_read_by_port() -> None:
    ((inode, listener),) = parse_proc_net_tcp(PROC_TCP, 0x6338)
    assert inode == 31337 and listener.state == "LISTEN" and listener.uid == 108
    assert listener.address == "127.0.0.1:25400"
    ((_, conn),) = parse_proc_net_tcp(PROC_TCP, 0x9C40)
    assert conn.state == "ESTABLISHED" and conn.address == "127.0.0.1:40000"
    ((_, any6),) = parse_proc_net_tcp(PROC_TCP6, 0x6338, v6=True)
    assert any6.address == "[::]:25400"
    assert parse_proc_net_tcp(PROC_TCP, 1) == [] and parse_proc_net_tcp("garbage\n1 2 3", 1) == []


def test_a_listener_is_named_with_its_process() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_blocked(port)
        holder = describe_port_holder(port)
    assert f"pid {os.getpid()}" in holder and "LISTEN" in holder, holder


def test_an_outgoing_connection_holding_the_port_is_found() -> None:
    """What the ephemeral range risks: a client socket on the port, nothing listening there."""
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.bind(("127.0.0.1", 0))
        client.connect(server.getsockname())
        port = client.getsockname()[1]
        assert port_blocked(port)
        holder = describe_port_holder(port)
    assert "ESTABLISHED" in holder and f"pid {os.getpid()}" in holder, holder


@pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")
def test_services_up_names_the_process_on_a_busy_port(tmp_path: Path, monkeypatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        monkeypatch.setenv("GRIDWATCH_HOME", str(tmp_path))
        monkeypatch.setenv("GRIDWATCH_DATABASE_URL", "postgresql://u:p@127.0.0.1:1/none")
        monkeypatch.delenv("GRIDWATCH_MQTT_URL", raising=False)
        monkeypatch.setenv("GRIDWATCH_MQTT_PORT", str(port))
        get_settings.cache_clear()
        try:
            res = CliRunner().invoke(app, ["services", "up"])
        finally:
            get_settings.cache_clear()
    assert res.exit_code == 1
    line = next(x for x in res.output.splitlines() if x.startswith("error:"))
    assert f"port {port} is already in use by " in line and f"pid {os.getpid()}" in line, line
    assert (
        f"GRIDWATCH_MQTT_PORT={port + 1}" in line
        and not (tmp_path / "mqtt" / "mosquitto.pid").exists()
    )


def test_default_ports_are_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    defaults = Settings.model_fields
    for name in ("pg_port", "mqtt_port"):
        assert not low <= defaults[name].default <= high, name
        assert defaults[name].default < 32768  # also outside Linux's default range


def test_doctor_warns_of_a_port_in_the_ephemeral_range(monkeypatch) -> None:
    low, _ = ephemeral_range()
    monkeypatch.setenv("GRIDWATCH_MQTT_PORT", str(low + 1))
    monkeypatch.delenv("GRIDWATCH_MQTT_URL", raising=False)
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["doctor", "--json"])
    finally:
        get_settings.cache_clear()
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert not checks["local ports"]["ok"] and not checks["local ports"]["required"]
    assert f"GRIDWATCH_MQTT_PORT={low + 1}" in checks["local ports"]["detail"]


def test_free_local_port_is_outside_the_ephemeral_range_and_bindable() -> None:
    import socket

    from gridwatch.ports import ephemeral_range, free_local_port

    low, _high = ephemeral_range()
    for _ in range(20):
        port = free_local_port()
        assert port < low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
