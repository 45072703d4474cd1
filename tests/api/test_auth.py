"""Sign-in, tokens, roles: 401 without or with a bad token, 403 with a reason, admin-only audit log."""

from __future__ import annotations

import pytest

from api.auth import TokenError, hash_password, issue_token, read_token, verify_password


def test_password_hash_is_argon2_and_verifies():
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "wrong horse")
    assert not verify_password("not-a-hash", "correct horse")


def test_token_round_trip_and_refusals():
    token, exp = issue_token("k1", 7, "alice", "operator", ttl_s=60)
    claims = read_token("k1", token)
    assert (claims.user_id, claims.username, claims.role, claims.expires) == (
        7,
        "alice",
        "operator",
        exp,
    )
    with pytest.raises(TokenError, match="signature"):
        read_token("other-key", token)
    with pytest.raises(TokenError, match="expired"):
        read_token("k1", token, now=exp + 1)
    head, body, sig = token.split(".")
    with pytest.raises(TokenError):
        read_token("k1", f"{head}.{body}x.{sig}")
    with pytest.raises(TokenError, match="malformed"):
        read_token("k1", "garbage")


def test_sign_in(client, users):
    r = client.post(
        "/api/v1/auth/token", json={"username": "t-operator", "password": "operator-pass-1"}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["user"]["role"] == "operator"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == "t-operator"


def test_wrong_password_and_unknown_user_are_401(client, users):
    for name, pw in (("t-operator", "nope-nope"), ("nobody", "whatever1")):
        r = client.post("/api/v1/auth/token", json={"username": name, "password": pw})
        assert r.status_code == 401
        assert "wrong user name or password" in r.json()["detail"]


def test_unauthenticated_is_401_with_reason(client):
    r = client.get("/api/v1/devices")
    assert r.status_code == 401
    assert "not authenticated" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.get("/api/v1/devices", headers={"Authorization": "Bearer gw1.abc.def"})
    assert r.status_code == 401 and "signature" in r.json()["detail"]


def test_forged_token_with_other_key_is_401(client, users):
    token, _ = issue_token("some-other-secret", 1, "t-admin", "admin")
    r = client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_roles_are_enforced_with_reasons(client, headers):
    r = client.get("/api/v1/users", headers=headers["t-operator"])
    assert r.status_code == 403
    assert "admin" in r.json()["detail"] and "t-operator" in r.json()["detail"]
    assert client.get("/api/v1/users", headers=headers["t-admin"]).status_code == 200
    # installers do not read alarms; auditors do not act on them
    assert client.get("/api/v1/alarms", headers=headers["t-installer"]).status_code == 403
    assert client.get("/api/v1/alarms", headers=headers["t-auditor"]).status_code == 200
    r = client.post("/api/v1/alarms/1/acknowledge", headers=headers["t-auditor"], json={})
    assert r.status_code == 403 and "operator" in r.json()["detail"]


def test_admin_creates_user_and_reads_it_in_the_audit_log(client, headers):
    body = {"username": "t-new-op", "password": "longenough1", "role": "operator"}
    r = client.post("/api/v1/users", headers=headers["t-admin"], json=body)
    assert r.status_code == 201, r.text
    assert client.post("/api/v1/users", headers=headers["t-admin"], json=body).status_code == 409
    log = client.get(
        "/api/v1/audit-log",
        headers=headers["t-admin"],
        params={"entity": "user", "entity_id": "t-new-op"},
    )
    assert log.status_code == 200
    items = log.json()["items"]
    assert items and items[0]["actor"] == "t-admin" and items[0]["action"] == "create"
    assert client.get("/api/v1/audit-log", headers=headers["t-auditor"]).status_code == 403


def test_installer_without_region_is_refused(client, headers):
    r = client.post(
        "/api/v1/users",
        headers=headers["t-admin"],
        json={"username": "t-inst-noregion", "password": "longenough1", "role": "installer"},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "regions"


def test_validation_errors_name_field_and_reason(client, headers):
    r = client.get("/api/v1/devices", headers=headers["t-operator"], params={"limit": -1})
    assert r.status_code == 422
    d = r.json()["detail"][0]
    assert d["field"] == "limit" and d["reason"]
