"""TLS for the pages and API: a local certificate authority made at set-up, or your own certificate.

Phones give geolocation, the camera and the compass only to secure pages, so the installer page
must be served over HTTPS. With no certificate of its own, the hub makes a small CA under
GRIDWATCH_HOME/tls (its key never leaves that directory, mode 0600) and a server certificate for
the hub's names and addresses; an installer installs the CA on the phone once (/install/ca).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest that phones' browsers accept for a server certificate


@dataclass(frozen=True)
class TlsFiles:
    """Where the certificate chain and key live; `ca` is None for a certificate of your own."""

    cert: Path
    key: Path
    ca: Path | None


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def local_names(extra: list[str] | None = None) -> list[str]:
    """The names and addresses the server certificate must carry: loopback, this host, extras."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            names.append(str(info[4][0]))
    except OSError:
        pass
    names += extra or []
    seen: list[str] = []
    for n in names:
        if n and n not in seen:
            seen.append(n)
    return seen


def _san(names: list[str]):
    from cryptography import x509

    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def ensure_local_ca(directory: Path, names: list[str]) -> TlsFiles:
    """Make (once) the local CA and (when names change or it nears expiry) the server certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert_path, ca_key_path = directory / "ca.crt", directory / "ca.key"
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    now = dt.datetime.now(dt.UTC)
    pem = serialization.Encoding.PEM
    plain = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()

    if ca_cert_path.is_file() and ca_key_path.is_file():
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gridwatch"),
                x509.NameAttribute(
                    NameOID.COMMON_NAME, f"gridwatch local CA ({socket.gethostname()})"
                ),
            ]
        )
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(ca_key_path, ca_key.private_bytes(pem, *plain))
        ca_cert_path.write_bytes(ca_cert.public_bytes(pem))

    if cert_path.is_file() and key_path.is_file():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        try:
            have = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            fresh = current.not_valid_after_utc - now > dt.timedelta(days=30)
            if fresh and set(map(str, have)) == set(map(str, _san(names))):
                return TlsFiles(cert_path, key_path, ca_cert_path)
        except x509.ExtensionNotFound:
            pass
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_private(key_path, key.private_bytes(pem, *plain))
    cert_path.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    return TlsFiles(cert_path, key_path, ca_cert_path)


def tls_files(settings) -> TlsFiles | None:
    """The certificate to serve with: your own (GRIDWATCH_TLS_CERT/KEY), the local CA's
    (GRIDWATCH_TLS=local), or None for plain HTTP."""
    from urllib.parse import urlsplit

    if settings.tls_cert and settings.tls_key:
        return TlsFiles(Path(settings.tls_cert), Path(settings.tls_key), None)
    if settings.tls != "local":
        return None
    extra = []
    if settings.public_url:
        host = urlsplit(settings.public_url).hostname
        if host:
            extra.append(host)
    if settings.api_host not in ("0.0.0.0", "::", ""):
        extra.append(settings.api_host)
    return ensure_local_ca(Path(settings.home) / "tls", local_names(extra))
