"""Per-device MQTT passwords: deterministic, key-dependent, 24 url-safe characters."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from hardware.credentials import device_password, device_username


def test_password_is_hmac_sha256_urlsafe_base64_24_chars() -> None:
    device_id, secret = "36012100001320000001", "k"
    want = base64.urlsafe_b64encode(
        hmac.new(b"k", device_id.encode(), hashlib.sha256).digest()
    ).decode()[:24]
    got = device_password(device_id, secret)
    assert got == want and len(got) == 24
    assert set(got) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_password_depends_on_id_and_key() -> None:
    a = device_password("36012100001320000001", "k1")
    assert a == device_password("36012100001320000001", "k1")
    assert a != device_password("36012100001320000002", "k1")
    assert a != device_password("36012100001320000001", "k2")
    assert device_username("36012100001320000001") == "36012100001320000001"


def test_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        device_password("36012100001320000001", "")
    with pytest.raises(ValueError, match="device_id"):
        device_password("", "k")
