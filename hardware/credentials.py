"""Per-device MQTT credentials: user name = the 20-digit id, password = HMAC of it (and its
reset nonce) under the hub's device key, which is not the API's token key."""

from __future__ import annotations

import base64
import hashlib
import hmac

PASSWORD_LENGTH = 24


def device_password(device_id: str, secret: str, nonce: str = "") -> str:
    """The device's MQTT password: url-safe base64 of HMAC-SHA256(secret, device_id[:nonce]), 24
    chars. `nonce` is the device's random reset nonce (none until its first reset).

    Deterministic, so the broker's password file, the fleet simulator and an installer's
    provisioning tool all derive the same password from the hub's secret key without storing it.
    """
    if not device_id:
        raise ValueError("device_id: must be a non-empty GB/T 28181 id")
    if not secret:
        raise ValueError("secret: must be a non-empty key (the hub's device key)")
    message = f"{device_id}:{nonce}" if nonce else device_id
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:PASSWORD_LENGTH]


def device_username(device_id: str) -> str:
    """The device's MQTT user name: its 20-digit id, which the broker ACL pattern %u relies on."""
    return device_id
