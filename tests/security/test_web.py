"""The web side under attack: hostile text in every view, CSP, tokens, lockout, revocation, scope.

Real services: `gridwatch serve` and `gridwatch ingest` as subprocesses on the test PostGIS and
Mosquitto, and Debian's Chromium (Playwright) for what a browser does with hostile text.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import httpx
import pytest

from tests.api.fixtures import PASSWORDS, device_id, places, users  # noqa: F401 - fixtures
from tests.api.stack import Stack, running_stack
from tests.maps.browser import newest_first, open_page, sign_in
from tests.support import wait_for

pytestmark = pytest.mark.integration

# Each payload sets window.__xss when it runs; a view is safe when it never does and shows the text.
HOSTILE = [
    '<img src=x onerror="window.__xss=(window.__xss||0)+1">',
    "<script>window.__xss=(window.__xss||0)+1</script>",
    '"><svg onload="window.__xss=(window.__xss||0)+1">',
]
HOSTILE_NAME = " ".join(HOSTILE)[:200]

# Records what the Content-Security-Policy blocked; runs before any page script (init script).
RECORD_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || ''));
});
"""


@pytest.fixture(scope="module")
def web_stack(db_url, mqtt_broker, users) -> Iterator[Stack]:  # noqa: F811 - fixture by name
    """`gridwatch serve` and `gridwatch ingest` on the test database and broker."""
    with running_stack() as s:
        yield s


def _auth(stack: Stack, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token(user, PASSWORDS[user][1])}"}


@pytest.fixture(scope="module")
def hostile_camera(web_stack) -> str:
    """A camera an installer named with HTML and script."""
    body = {
        "id": device_id(),
        "lon": 115.3712,
        "lat": 28.3713,
        "heading_deg": 90,
        "focal_mm": 4,
        "name": HOSTILE_NAME,
    }
    r = httpx.post(
        f"{web_stack.base}/api/v1/devices",
        headers=_auth(web_stack, "t-installer"),
        json=body,
        timeout=20,
    )
    assert r.status_code == 201, r.text
    return body["id"]


@pytest.mark.browser
def test_hostile_device_name_in_the_map_popup_is_text(web_stack, hostile_camera, browser):
    context, page, net = open_page(browser)
    context.add_init_script(RECORD_CSP)
    try:
        sign_in(page, web_stack.base, "/map", "t-operator", "operator-pass-1")
        page.wait_for_selector("#gw-conn[data-state=live]", timeout=10000)
        # the same handler a click on the device's point runs (the map's vector-tile layer)
        page.evaluate(
            "id => gw.live.devices.fire('click', {layer: {properties: {id: id}},"
            " latlng: L.latLng(28.3713, 115.3712)})",
            hostile_camera,
        )
        popup = page.locator(".gw-device-popup")
        popup.wait_for(timeout=10000)
        assert HOSTILE_NAME in popup.locator("b").inner_text()
        assert popup.locator("img, script, svg").count() == 0
        assert page.evaluate("window.__xss") is None
        assert not net.problems(), net.problems()
    finally:
        context.close()


@pytest.mark.browser
def test_csp_header_is_strict_and_the_browser_honours_it(web_stack, browser):
    r = httpx.get(f"{web_stack.base}/map", timeout=10)
    csp = r.headers["content-security-policy"]
    assert (
        "script-src 'self'" in csp
        and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    )
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in r.text  # no inline script: the page's start-up is a file
    api = httpx.get(f"{web_stack.base}/api/v1/health", timeout=10)
    assert "content-security-policy" in api.headers and api.headers["x-frame-options"] == "DENY"

    context, page, net = open_page(browser)
    context.add_init_script(RECORD_CSP)
    try:
        sign_in(page, web_stack.base, "/map", "t-operator", "operator-pass-1")
        page.wait_for_selector("#gw-conn[data-state=live]", timeout=10000)
        assert page.evaluate("window.__csp") == []  # the real pages break no rule
        # what an injection would do, had something slipped past the escaping:
        page.evaluate(
            "html => document.body.insertAdjacentHTML('beforeend', html)", HOSTILE[0] + HOSTILE[2]
        )
        page.evaluate(
            "() => { var s = document.createElement('script');"
            " s.textContent = 'window.__xss = 1'; document.body.appendChild(s); }"
        )
        page.wait_for_function("() => window.__csp.length >= 2", timeout=5000)
        assert page.evaluate("window.__xss") is None
        blocked = page.evaluate("window.__csp")
        assert any(v.startswith("script-src") for v in blocked), blocked
    finally:
        context.close()


# ---------------------------------------------------------------------------- tokens and sessions


def _admin(stack: Stack) -> dict[str, str]:
    return _auth(stack, "t-admin")


def _new_user(stack: Stack, name: str, password: str, role: str = "operator", regions=()) -> None:
    r = httpx.post(
        f"{stack.base}/api/v1/users",
        headers=_admin(stack),
        json={"username": name, "password": password, "role": role, "regions": list(regions)},
        timeout=10,
    )
    assert r.status_code in (201, 409), r.text


def _sign_in(stack: Stack, name: str, password: str, **kw) -> httpx.Response:
    return httpx.post(
        f"{stack.base}/api/v1/auth/token",
        json={"username": name, "password": password},
        timeout=20,
        **kw,
    )


def _me(stack: Stack, token: str) -> httpx.Response:
    return httpx.get(
        f"{stack.base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_token_never_in_a_url_or_a_log(web_stack):
    token = web_stack.token("t-operator", PASSWORDS["t-operator"][1])
    # a client that still puts it in the URL is refused, and the log keeps no copy of it
    r = httpx.get(
        f"{web_stack.base}/api/v1/stream",
        params={"once": "true", "access_token": token},
        timeout=10,
    )
    assert r.status_code == 400 and "tokens in URLs are refused" in r.json()["detail"]
    r = httpx.get(
        f"{web_stack.base}/api/v1/audits/1/report.html", params={"access_token": token}, timeout=10
    )
    assert r.status_code == 400
    # the page session: the token only in an HttpOnly cookie, never in the body
    with httpx.Client(base_url=web_stack.base, timeout=10) as browser:
        s = browser.post(
            "/api/v1/auth/session",
            json={"username": "t-operator", "password": PASSWORDS["t-operator"][1]},
        )
        assert s.status_code == 200, s.text
        assert "access_token" not in s.json() and "gw1." not in s.text
        cookie = s.headers["set-cookie"].lower()
        assert "gw_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        stream = browser.get("/api/v1/stream", params={"once": "true"})
        assert stream.status_code == 200 and "event: hello" in stream.text
    for line in web_stack.api.tail(10**7).splitlines():
        assert token not in line and token.split(".")[2] not in line, line


def test_access_log_redacts_credentials():
    from api.logs import redact

    line = '127.0.0.1:5 - "GET /api/v1/stream?region=1&access_token=gw1.abc.def123456 HTTP/1.1"'
    assert "gw1.abc.def123456" not in redact(line) and "access_token=***" in redact(line)
    assert redact("Authorization: Bearer gw1.aaaaaaaa.bbbbbbbb") == "Authorization: Bearer ***"


def test_csrf_needed_to_change_anything_with_the_cookie(web_stack):
    _new_user(web_stack, "t-csrf", "csrf-pass-123")
    with httpx.Client(base_url=web_stack.base, timeout=10) as browser:
        s = browser.post(
            "/api/v1/auth/session", json={"username": "t-csrf", "password": "csrf-pass-123"}
        )
        csrf = s.json()["csrf_token"]
        change = {"current_password": "csrf-pass-123", "new_password": "csrf-pass-456"}
        # a cross-site form or script cannot read the CSRF cookie: without the header, 403
        r = browser.post("/api/v1/auth/password", json=change)
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
        r = browser.post("/api/v1/auth/password", json=change, headers={"X-CSRF-Token": "x" * 43})
        assert r.status_code == 403
        assert browser.get("/api/v1/auth/me").status_code == 200  # reads need no header
        r = browser.post("/api/v1/auth/password", json=change, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204, r.text
        # the password change revoked the session it was made with
        assert browser.get("/api/v1/auth/me").status_code == 401
    assert _sign_in(web_stack, "t-csrf", "csrf-pass-456").status_code == 200


def test_lockout_per_user_name(web_stack):
    from api.signin import USER_FREE

    _new_user(web_stack, "t-lock", "lock-pass-123")
    for _ in range(USER_FREE):
        r = _sign_in(web_stack, "t-lock", "wrong-password")
        assert r.status_code == 401, r.text
    r = _sign_in(web_stack, "t-lock", "wrong-password")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # locked means locked: the right password is not even checked
    r = _sign_in(web_stack, "t-lock", "lock-pass-123")
    assert r.status_code == 429 and "try again in" in r.json()["detail"]
    # other users are not affected
    assert _sign_in(web_stack, "t-operator", PASSWORDS["t-operator"][1]).status_code == 200


def test_lockout_per_address(web_stack):
    from api.signin import ADDR_FREE

    # uvicorn takes the client address from X-Forwarded-For sent by a trusted (loopback) proxy
    attacker = {"X-Forwarded-For": "203.0.113.77"}
    for i in range(ADDR_FREE):
        r = _sign_in(web_stack, f"t-nobody-{i}", "wrong-password", headers=attacker)
        assert r.status_code == 401, r.text
    r = _sign_in(web_stack, "t-auditor", PASSWORDS["t-auditor"][1], headers=attacker)
    assert r.status_code == 429, r.text
    other = {"X-Forwarded-For": "203.0.113.78"}
    assert (
        _sign_in(web_stack, "t-auditor", PASSWORDS["t-auditor"][1], headers=other).status_code
        == 200
    )


def test_password_change_disable_and_delete_revoke_tokens(web_stack):
    _new_user(web_stack, "t-rev", "rev-pass-1234")
    base = f"{web_stack.base}/api/v1/users/t-rev"
    old = _sign_in(web_stack, "t-rev", "rev-pass-1234").json()["access_token"]
    assert _me(web_stack, old).status_code == 200
    r = httpx.patch(base, headers=_admin(web_stack), json={"password": "rev-pass-5678"}, timeout=10)
    assert r.status_code == 200, r.text
    r = _me(web_stack, old)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    new = _sign_in(web_stack, "t-rev", "rev-pass-5678").json()["access_token"]
    assert _me(web_stack, new).status_code == 200
    r = httpx.patch(base, headers=_admin(web_stack), json={"active": False}, timeout=10)
    assert r.status_code == 200 and r.json()["active"] is False
    assert _me(web_stack, new).status_code == 401
    assert _sign_in(web_stack, "t-rev", "rev-pass-5678").status_code == 401  # disabled
    r = httpx.patch(base, headers=_admin(web_stack), json={"active": True}, timeout=10)
    assert r.status_code == 200 and r.json()["active"] is True
    assert _me(web_stack, new).status_code == 401  # enabling does not bring old tokens back
    again = _sign_in(web_stack, "t-rev", "rev-pass-5678").json()["access_token"]
    assert httpx.delete(base, headers=_admin(web_stack), timeout=10).status_code == 204
    assert _me(web_stack, again).status_code == 401
    assert httpx.delete(base, headers=_admin(web_stack), timeout=10).status_code == 404
    # an admin cannot lock themselves out
    me = f"{web_stack.base}/api/v1/users/t-admin"
    assert httpx.delete(me, headers=_admin(web_stack), timeout=10).status_code == 409


def test_cli_disable_and_delete(web_stack):
    import json
    import subprocess
    import sys

    _new_user(web_stack, "t-cli-user", "cli-pass-1234")
    token = _sign_in(web_stack, "t-cli-user", "cli-pass-1234").json()["access_token"]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "gridwatch", "users", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=web_stack.env,
        )

    out = cli("disable", "t-cli-user", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["user"]["active"] is False
    assert _me(web_stack, token).status_code == 401
    assert cli("delete", "t-cli-user", "--yes").returncode == 0
    gone = cli("delete", "t-cli-user", "--yes")
    assert gone.returncode == 2 and "no user called" in gone.stderr


def test_forged_tokens_are_refused(web_stack):
    import base64
    import json

    from api.auth import issue_token
    from gridwatch.settings import get_settings

    real = web_stack.token("t-operator", PASSWORDS["t-operator"][1])
    prefix, body, sig = real.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    admin_claims = dict(claims, role="admin", sub="t-admin")
    forged_body = base64.urlsafe_b64encode(json.dumps(admin_claims).encode()).rstrip(b"=").decode()
    attempts = {
        "claims changed, old signature": f"{prefix}.{forged_body}.{sig}",
        "signed with another key": issue_token("not-the-key", claims["uid"], "t-operator", "admin")[
            0
        ],
        "no signature": f"{prefix}.{body}.",
        "alg none style": f"{prefix}.{body}",
        "expired": issue_token(
            get_settings().secret_key, claims["uid"], "t-operator", "operator", ttl_s=-10
        )[0],
        "garbage": "gw1.%%%.%%%",
    }
    for what, token in attempts.items():
        r = httpx.get(
            f"{web_stack.base}/api/v1/users",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 401, (what, r.status_code, r.text)
    # a cookie holding a forged token is no better
    r = httpx.get(
        f"{web_stack.base}/api/v1/auth/me",
        cookies={"gw_session": f"{prefix}.{forged_body}.{sig}"},
        timeout=10,
    )
    assert r.status_code == 401


# ---------------------------------------------------------------------------- scope of linked cameras


def _raise_alarm(engine, dev: str, lon: float, lat: float) -> int:
    """An alarm stored and announced by the ingest package's own code (as the worker does)."""
    import time

    from ingest.alarms import AlarmIn, store_alarms
    from ingest.events import emit_events

    with engine.begin() as conn:
        out = store_alarms(
            conn,
            [AlarmIn(dev, f"sec-{dev}-{time.time_ns()}", "intrusion", 1, time.time(), lon, lat)],
        )
        emit_events(conn, out.events())
    return out.new[0]["id"]


def test_linked_cameras_are_filtered_by_the_readers_scope(web_stack, engine):
    from tests.api.fixtures import COUNTY_A, TOWN_A

    _new_user(web_stack, "t-inst-county", "inst-county-1", "installer", [COUNTY_A])
    _new_user(web_stack, "t-op-town", "op-town-1234", "operator", [TOWN_A])
    # a camera of the county just east of the township's edge (115.40), one just inside it, both
    # facing away: an alarm between them is linked to both as the nearest cameras
    outside = {"id": device_id(), "lon": 115.4004, "lat": 28.4, "heading_deg": 90, "focal_mm": 4}
    inside = {"id": device_id(), "lon": 115.3994, "lat": 28.4, "heading_deg": 270, "focal_mm": 4}
    for body, who, password in (
        (outside, "t-inst-county", "inst-county-1"),
        (inside, "t-installer", PASSWORDS["t-installer"][1]),
    ):
        r = httpx.post(
            f"{web_stack.base}/api/v1/devices",
            headers={"Authorization": f"Bearer {web_stack.token(who, password)}"},
            json=body,
            timeout=20,
        )
        assert r.status_code == 201, r.text
    assert r.json()["region_code"].startswith(TOWN_A[:9])
    alarm = _raise_alarm(engine, inside["id"], 115.3998, 28.4)
    everyone = _auth(web_stack, "t-operator")
    town = {"Authorization": f"Bearer {web_stack.token('t-op-town', 'op-town-1234')}"}

    def cameras(headers) -> set[str]:
        r = httpx.get(f"{web_stack.base}/api/v1/alarms/{alarm}", headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        return {c["device_id"] for c in r.json()["cameras"]}

    assert outside["id"] in cameras(everyone)  # the hub-wide operator sees both
    assert outside["id"] not in cameras(town)  # the township's operator only its own
    # the same on the live stream (the alarm.new event names its linked cameras)
    import json

    def streamed(headers) -> set[str]:
        r = httpx.get(
            f"{web_stack.base}/api/v1/stream",
            params={"since": 0, "once": "true"},
            headers=headers,
            timeout=30,
        )
        found: set[str] = set()
        for frame in r.text.split("\n\n"):
            if "event: alarm.new" in frame:
                data = json.loads(frame.split("data: ", 1)[1])
                if data["payload"].get("id") == alarm:
                    found |= {c["device_id"] for c in data["payload"].get("cameras", [])}
        return found

    assert outside["id"] in streamed(everyone)
    assert outside["id"] not in streamed(town)


# ---------------------------------------------------------------------------- hostile text, other views

COUNTY_X, TOWN_X, VILLAGE_X = "360521000000", "360521100000", "360521100001"


@pytest.fixture(scope="module")
def hostile_county(engine) -> str:
    """A county whose township and village were imported with HTML and script in their names."""
    from sqlalchemy import text

    rows = [
        (COUNTY_X, 3, "分宜县", "360500000000", (114.60, 27.75, 114.70, 27.85)),
        (TOWN_X, 4, HOSTILE[0], COUNTY_X, (114.60, 27.75, 114.70, 27.85)),
        (VILLAGE_X, 5, HOSTILE_NAME, TOWN_X, (114.60, 27.75, 114.70, 27.85)),
    ]
    with engine.begin() as conn:
        for code, level, name, parent, (w, s, e, n) in rows:
            conn.execute(
                text(
                    "INSERT INTO regions (code, level, name, parent_code, urban_rural_code, geom) "
                    "VALUES (:c, :l, :n, :p, 220, ST_Multi(ST_MakeEnvelope(:w, :s, :e, :nn, 4326))) "
                    "ON CONFLICT (code) DO NOTHING"
                ),
                {"c": code, "l": level, "n": name, "p": parent, "w": w, "s": s, "e": e, "nn": n},
            )
    return COUNTY_X


def _audit(stack: Stack, region: str) -> int:
    import time

    h = _auth(stack, "t-auditor")
    r = httpx.post(f"{stack.base}/api/v1/audits", headers=h, json={"region": region}, timeout=20)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    for _ in range(600):
        body = httpx.get(f"{stack.base}/api/v1/audits/{job}", headers=h, timeout=20).json()
        if body["status"] != "running":
            assert body["status"] == "done", body
            return job
        time.sleep(0.2)
    raise AssertionError("the audit did not finish")


def test_hostile_region_names_in_the_html_report_are_escaped(web_stack, hostile_county):
    job = _audit(web_stack, hostile_county)
    r = httpx.get(
        f"{web_stack.base}/api/v1/audits/{job}/report.html",
        headers=_auth(web_stack, "t-auditor"),
        timeout=30,
    )
    assert r.status_code == 200
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    html = r.text
    assert "<script" not in html.lower() and "onerror=" not in html.replace("onerror=&quot;", "")
    assert "&lt;img src=x onerror=" in html  # shown, as text
    assert "Content-Security-Policy" in html  # the meta policy travels with the downloaded file


@pytest.mark.browser
def test_hostile_names_in_the_audit_view_are_text(web_stack, hostile_county, browser):
    _audit(web_stack, hostile_county)
    context, page, net = open_page(browser)
    context.add_init_script(RECORD_CSP)
    try:
        sign_in(
            page, web_stack.base, f"/audit?region={hostile_county}", "t-auditor", "auditor-pass-1"
        )
        page.wait_for_selector("#gw-a-status[data-status=done]", timeout=30000)
        page.wait_for_function(
            "() => document.querySelectorAll('path.gw-choropleth').length >= 1", timeout=10000
        )
        # the tooltip of the hostile village, and the failing-units table
        page.locator("path.gw-choropleth").first.hover(force=True)
        page.wait_for_timeout(300)
        side = page.locator("#gw-side")
        assert side.locator("img, script, svg").count() == 0
        assert page.locator(".leaflet-tooltip img, .leaflet-tooltip svg").count() == 0
        assert page.evaluate("window.__xss") is None
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()


@pytest.mark.browser
def test_hostile_device_name_in_the_alarm_list_is_text(web_stack, hostile_camera, engine, browser):
    context, page, net = open_page(browser)
    context.add_init_script(RECORD_CSP)
    try:
        sign_in(page, web_stack.base, "/map", "t-operator", "operator-pass-1")
        page.wait_for_selector("#gw-conn[data-state=live]", timeout=10000)
        # newest first: in the default order (severity, then oldest first) the suite's other open
        # severity-1 alarms can push this one past the loaded page, where it is announced, not shown
        newest_first(page)
        alarm = _raise_alarm(engine, hostile_camera, 115.37121, 28.37131)
        item = page.locator(f".gw-alarm[data-alarm-id='{alarm}']")
        item.wait_for(timeout=10000)
        item.click()  # selecting lists the linked cameras, by name
        page.locator(f".gw-alarm[data-alarm-id='{alarm}'] .gw-a-cam").first.wait_for(timeout=10000)
        assert HOSTILE_NAME in item.inner_text()
        assert page.locator("#gw-alarms img, #gw-alarms script, #gw-alarms svg").count() == 0
        assert page.evaluate("window.__xss") is None
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()


@pytest.mark.browser
def test_hostile_hub_name_in_the_alarm_list_is_text(web_stack, hostile_camera, engine, browser):
    """A county alarm at its city shows the hub it comes from (`from_hub`), as text, whether it
    arrives by the live stream (the relay's payload) or by the queue's own load (the API)."""
    import time

    from sqlalchemy import text

    from ingest.alarms import AlarmIn, store_alarms
    from ingest.events import emit_events

    context, page, net = open_page(browser)
    context.add_init_script(RECORD_CSP)
    try:
        sign_in(page, web_stack.base, "/map", "t-operator", "operator-pass-1")
        page.wait_for_selector("#gw-conn[data-state=live]", timeout=10000)
        newest_first(page)  # as above: not pushed past the loaded page
        with engine.begin() as conn:
            msg = f"hub-{time.time_ns()}"
            out = store_alarms(
                conn, [AlarmIn(hostile_camera, msg, "smoke", 1, time.time(), 115.3712, 28.3713)]
            )
            alarm = out.new[0]["id"]
            conn.execute(
                text("UPDATE alarms SET origin = :o WHERE id = :id"),
                {"o": HOSTILE_NAME, "id": alarm},
            )
            emit_events(conn, [(k, r, {**p, "from_hub": HOSTILE_NAME}) for k, r, p in out.events()])
        for way in ("stream", "the queue's own load"):
            if way != "stream":
                page.reload()
                page.wait_for_selector("#gw-conn[data-state=live]", timeout=10000)
                newest_first(page)
            item = page.locator(f".gw-alarm[data-alarm-id='{alarm}']")
            item.wait_for(timeout=10000)
            assert item.locator(".gw-a-hub").inner_text() == HOSTILE_NAME
            item.click()
            facts = page.locator(f".gw-alarm[data-alarm-id='{alarm}'] .gw-facts")
            try:
                facts.wait_for(timeout=10000)
            except Exception:
                # three times in CI (never in 60 local runs under load) the details had not
                # come 10 s after the click, and the row had left the list; what the page showed
                # goes to the warnings summary, and the details must come on a fresh list
                seen = page.evaluate(
                    "(id) => [document.querySelector(`.gw-alarm[data-alarm-id='${id}']`)?.className,"
                    " [...document.querySelectorAll('.gw-toast')].map(t => t.textContent),"
                    " document.getElementById('gw-new-banner')?.getAttribute('data-n'),"
                    " document.getElementById('gw-alarms').getAttribute('data-generation'),"
                    " document.getElementById('gw-alarms').getAttribute('data-loaded')]",
                    alarm,
                )
                warnings.warn(
                    f"{way}: no details 10 s after the click; row class, toasts, banner, "
                    f"generation, rows: {seen}",
                    stacklevel=1,
                )
                page.reload()
                page.wait_for_selector("#gw-conn[data-state=live]", timeout=10000)
                newest_first(page)
                item.wait_for(timeout=10000)
                item.click()
                facts.wait_for(timeout=15000)

            def facts_text(facts=facts) -> str:
                # the row's details are drawn again when the alarm's own events arrive: read
                # whichever copy is there (one was replaced under inner_text on a loaded machine)
                try:
                    return facts.first.inner_text(timeout=1000)
                except Exception:
                    return ""

            assert wait_for(lambda: HOSTILE_NAME in facts_text(), 15), facts_text()
            assert page.locator("#gw-alarms img, #gw-alarms script, #gw-alarms svg").count() == 0
            assert page.evaluate("window.__xss") is None
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()


def test_service_logs_are_private(tmp_path):
    import stat
    import sys

    from gridwatch.supervisor import Supervisor

    sup = Supervisor(tmp_path / "logs")
    sup.add("quiet", [sys.executable, "-c", "print('hello')"])
    sup.start_all()
    try:
        assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "logs" / "quiet.log").stat().st_mode) == 0o600
    finally:
        sup.stop_all()


def test_lock_grows_with_every_failure_up_to_a_cap():
    from api.signin import ADDR_FREE, FIRST_LOCK_S, MAX_LOCK_S, USER_FREE, lock_for

    assert [lock_for(n, USER_FREE) for n in range(USER_FREE)] == [0] * USER_FREE
    assert lock_for(USER_FREE, USER_FREE) == FIRST_LOCK_S
    assert lock_for(USER_FREE + 1, USER_FREE) == 2 * FIRST_LOCK_S
    assert lock_for(USER_FREE + 50, USER_FREE) == MAX_LOCK_S
    assert lock_for(ADDR_FREE - 1, ADDR_FREE) == 0
