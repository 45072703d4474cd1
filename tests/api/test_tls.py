"""HTTPS for phones: a local CA made once, a server certificate for the hub's names, the CA page
with the installer page's QR code, and device credentials that name the public broker address."""

from __future__ import annotations

import os
import ssl
import stat
import sys

import httpx
import pytest
from cryptography import x509

from gridwatch.tls import ensure_local_ca
from tests.api.fixtures import PASSWORDS, device_id
from tests.api.stack import Proc, free_port
from tests.support import wait_for


def test_local_ca_is_made_once_and_its_key_is_private(tmp_path):
    first = ensure_local_ca(tmp_path, ["localhost", "127.0.0.1", "hub.lan"])
    assert first.ca is not None
    for key in (tmp_path / "ca.key", first.key):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hub.lan" in names.get_values_for_type(x509.DNSName)
    ca_before = first.ca.read_bytes()
    server_before = first.cert.read_bytes()
    again = ensure_local_ca(tmp_path, ["localhost", "127.0.0.1", "hub.lan"])
    assert again.ca.read_bytes() == ca_before and again.cert.read_bytes() == server_before
    renamed = ensure_local_ca(tmp_path, ["localhost", "127.0.0.1", "hub2.lan"])
    assert renamed.ca.read_bytes() == ca_before  # the CA phones trust stays
    assert renamed.cert.read_bytes() != server_before


@pytest.mark.integration
def test_serve_over_https_with_the_local_ca(db_url, mqtt_broker, users):
    port = free_port()
    env = dict(os.environ)
    env.update(
        GRIDWATCH_TLS="local",
        GRIDWATCH_PUBLIC_URL=f"https://hub.lan:{port}",
        GRIDWATCH_MQTT_PUBLIC_URL="mqtts://hub.lan:8883",
        GRIDWATCH_LOG_LEVEL="WARNING",
    )
    api = Proc("api-tls", [sys.executable, "-m", "gridwatch", "serve", "--port", str(port)], env)
    try:
        from gridwatch.settings import Settings

        ca = Settings().home / "tls" / "ca.crt"
        assert wait_for(lambda: ca.is_file() or not api.alive(), 120, 0.2), api.tail()
        verify = ssl.create_default_context(cafile=str(ca))
        base = f"https://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return (
                    httpx.get(f"{base}/api/v1/health", verify=verify, timeout=2).status_code == 200
                )
            except httpx.HTTPError:
                return False

        assert wait_for(up, 120, 0.3), api.tail()
        page = httpx.get(f"{base}/install/ca", verify=verify)
        assert page.status_code == 200 and "<svg" in page.text and "SHA-256" in page.text
        assert f"https://hub.lan:{port}/install" in page.text  # the QR code's address
        crt = httpx.get(f"{base}/install/ca.crt", verify=verify)
        assert crt.content == ca.read_bytes() and b"PRIVATE" not in crt.content
        with pytest.raises(httpx.ConnectError):  # without the CA, the phone refuses
            httpx.get(f"{base}/api/v1/health", timeout=5)

        user = "t-installer"
        token = httpx.post(
            f"{base}/api/v1/auth/token",
            json={"username": user, "password": PASSWORDS[user][1]},
            verify=verify,
        ).json()["access_token"]
        dev = device_id()
        h = {"Authorization": f"Bearer {token}"}
        r = httpx.post(
            f"{base}/api/v1/devices",
            headers=h,
            json={"id": dev, "lon": 115.355, "lat": 28.406},
            verify=verify,
        )
        assert r.status_code == 201, r.text
        creds = httpx.get(f"{base}/api/v1/devices/{dev}/mqtt-credentials", headers=h, verify=verify)
        assert creds.json()["url"] == "mqtts://hub.lan:8883", creds.text
    finally:
        api.stop()
