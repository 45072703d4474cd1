"""The web side under attack: hostile text in every view, CSP, tokens, lockout, revocation, scope.

Real services: `gridwatch serve` and `gridwatch ingest` as subprocesses on the test PostGIS and
Mosquitto, and Debian's Chromium (Playwright) for what a browser does with hostile text.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.fixtures import PASSWORDS, device_id, places, users  # noqa: F401 - fixtures
from tests.api.stack import Stack
from tests.maps.browser import open_page, sign_in

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
    s = Stack()
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


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
