"""The three views in Debian's Chromium (network limited to localhost) against the real API and ingest."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from shapely.geometry import shape
from sqlalchemy import text

from hardware.crs import wgs84_to_gcj02
from tests.api.fixtures import PASSWORDS, device_id
from tests.api.stack import mosquitto_pub
from tests.maps.browser import open_page, sign_in
from tests.support import wait_for

# screenshots of each run land here (git-ignored); bench/map_screens.py makes the docs/img ones
IMG = Path(__file__).resolve().parents[2] / "bench" / "out" / "screens"
IMG.mkdir(parents=True, exist_ok=True)


def _auth(stack, user):
    return {"Authorization": f"Bearer {stack.token(user, PASSWORDS[user][1])}"}


@pytest.fixture(scope="module")
def cameras(stack):
    """Six cameras registered through the API in village A1, facing different ways."""
    h = _auth(stack, "t-installer")
    ids = []
    for i in range(6):
        body = {
            "id": device_id(),
            "lon": 115.341 + 0.0015 * i,
            "lat": 28.391 + 0.0007 * (i % 3),
            "heading_deg": (60 * i) % 360,
            "focal_mm": 4,
            "name": f"东村 {i + 1} 号杆",
        }
        r = httpx.post(f"{stack.base}/api/v1/devices", headers=h, json=body, timeout=20)
        assert r.status_code == 201, r.text
        ids.append(body["id"])
    return ids


def _creds(stack, dev):
    r = httpx.post(
        f"{stack.base}/api/v1/devices/{dev}/mqtt-credentials",
        headers=_auth(stack, "t-installer"),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_live_map_loads_locally_and_shows_devices(stack, browser, cameras):
    context, page, net = open_page(browser)
    try:
        sign_in(page, stack.base, "/map", "t-operator", "operator-pass-1")
        page.wait_for_selector("#gw-conn[data-state=live]", timeout=10000)
        page.evaluate("gw.map.setView([28.392, 115.345], 16)")
        total = page.wait_for_function(
            "() => Number(document.getElementById('gw-n-total').getAttribute('data-total')) >= 6",
            timeout=10000,
        )
        assert total
        # device points drawn from vector tiles (SVG renderer), at least our six
        wait_for(lambda: page.locator(".leaflet-tile-container svg path").count() >= 6, 10)
        assert page.locator(".leaflet-tile-container svg path").count() >= 6
        tiles = [u for s, u in net.responses if "/tiles/devices/" in u and s == 200]
        assert tiles, "no device tiles were loaded"

        # place names from the hub's own regions, chosen and sized by zoom
        def labels():
            return page.eval_on_selector_all(
                ".gw-place",
                "els => els.map(e => [e.dataset.kind, e.textContent, parseFloat(e.style.fontSize)])",
            )

        def kinds(zoom):
            drawn = page.get_attribute(".leaflet-container", "data-label-zoom")
            if drawn != str(zoom):  # the names of the previous view are still up
                return ""
            return page.get_attribute(".leaflet-container", "data-label-kinds") or ""

        page.evaluate("gw.map.setView([28.40, 115.35], 13)")
        wait_for(lambda: "village" in kinds(13), 10)
        near = {(k, n): px for k, n, px in labels()}
        assert ("village", "东村") in near and ("township", "筠阳街道") in near
        page.screenshot(path=str(IMG / "live-map-labels.png"))
        page.evaluate("gw.map.setView([28.42, 115.40], 11)")
        wait_for(lambda: "county" in kinds(11), 10)
        assert "village" not in kinds(11)
        far = {(k, n): px for k, n, px in labels()}
        assert ("township", "筠阳街道") in far
        assert near[("township", "筠阳街道")] > far[("township", "筠阳街道")]  # larger zoomed in
        page.wait_for_load_state("networkidle")
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_alarm_appears_within_a_second_and_is_acknowledged(stack, browser, cameras, engine):
    cam = cameras[0]
    creds = _creds(stack, cam)
    context, page, net = open_page(browser)
    try:
        sign_in(page, stack.base, "/map", "t-operator", "operator-pass-1")
        page.wait_for_selector("#gw-conn[data-state=live]", timeout=10000)
        msg_id = f"e2e-{uuid.uuid4().hex[:10]}"
        # inside the camera's sector (its centre), so the camera truly covers the spot
        dev = httpx.get(
            f"{stack.base}/api/v1/devices/{cam}", headers=_auth(stack, "t-operator"), timeout=10
        ).json()
        spot = shape(dev["fov"]).centroid
        payload = json.dumps(
            {
                "msg_id": msg_id,
                "ts": time.time(),
                "kind": "intrusion",
                "severity": 1,
                "lon": round(spot.x, 7),
                "lat": round(spot.y, 7),
            }
        )
        mosquitto_pub(
            creds["host"],
            creds["port"],
            creds["username"],
            creds["password"],
            creds["topics"]["alarm"],
            payload,
        )
        item = page.locator(f".gw-alarm[data-state=new]:has-text('{cam}')")
        item.first.wait_for(
            timeout=1000
        )  # published -> ingest -> PostGIS -> event bus -> SSE -> DOM
        assert "gw-flash" in item.first.get_attribute("class")
        alarm_id = int(item.first.get_attribute("data-alarm-id"))
        item = page.locator(f".gw-alarm[data-alarm-id='{alarm_id}']")
        item.click()  # select: the covering camera is highlighted
        page.locator(f".gw-a-cam.covers[data-camera-id='{cam}']").wait_for(timeout=5000)
        assert page.locator("path.gw-cover-highlight").count() >= 1
        page.screenshot(path=str(IMG / "live-map.png"))
        item.locator("button[data-action=acknowledge]").click()
        page.locator(f".gw-alarm[data-alarm-id='{alarm_id}'][data-state=acknowledged]").wait_for(
            timeout=5000
        )
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT state, acknowledged_by FROM alarms WHERE id = :i"), {"i": alarm_id}
            ).one()
        assert tuple(row) == ("acknowledged", "t-operator")
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_language_toggle(stack, browser):
    context, page, _net = open_page(browser)
    try:
        sign_in(page, stack.base, "/map", "t-operator", "operator-pass-1")
        assert page.inner_text(".gw-bar h1") == "Command centre live map"
        page.click("#gw-lang")
        assert page.inner_text(".gw-bar h1") == "指挥中心实时地图"
        page.click("#gw-lang")
    finally:
        page.evaluate("localStorage.removeItem('gw.lang')")
        context.close()


def test_installer_registers_a_device_end_to_end(stack, browser, engine):
    dev = device_id()
    glon, glat = wgs84_to_gcj02(115.3605, 28.4012)
    context, page, net = open_page(browser, viewport={"width": 390, "height": 844}, mobile=True)
    try:
        sign_in(page, stack.base, "/install", "t-installer", "installer-pass-1")
        page.fill("#gw-i-id", dev)
        page.fill("#gw-i-name", "村口卡点")
        page.fill("#gw-i-lon", f"{glon:.6f}")
        page.fill("#gw-i-lat", f"{glat:.6f}")
        page.select_option("#gw-i-crs", "gcj02")
        page.fill("#gw-i-heading", "135")
        page.click("#gw-i-preview")
        page.locator("#gw-i-rules li[data-rule=village_monitoring_points]").wait_for(timeout=10000)
        assert page.locator("path.gw-preview-sector").count() == 1
        with engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT count(*) FROM devices WHERE id = :i"), {"i": dev}
                ).scalar()
                == 0
            )
        page.click("#gw-i-save")
        page.locator("#gw-i-status[data-status=unknown]").wait_for(timeout=10000)
        page.locator("#gw-i-creds").wait_for(timeout=10000)
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT region_code, registered_by, ST_X(position), ST_Y(position) FROM devices WHERE id = :i"
                ),
                {"i": dev},
            ).one()
        assert row[0] == "360983100202" or row[0] == "360983100201"
        assert row[1] == "t-installer"
        assert abs(row[2] - 115.3605) < 1e-5 and abs(row[3] - 28.4012) < 1e-5
        # the page set the device's password and showed it once; the device uses what it showed
        shown = page.inner_text("#gw-i-creds")
        password = shown.split("password ", 1)[1].split()[0]
        creds = httpx.get(
            f"{stack.base}/api/v1/devices/{dev}/mqtt-credentials",
            headers=_auth(stack, "t-installer"),
            timeout=10,
        ).json()
        assert creds["password"] is None  # never shown again
        # the device's first heartbeat, with its own credentials -> online on the installer's phone
        mosquitto_pub(
            creds["host"],
            creds["port"],
            creds["username"],
            password,
            creds["topics"]["heartbeat"],
            json.dumps({"ts": time.time()}),
        )
        page.locator("#gw-i-status[data-status=online]").wait_for(timeout=15000)
        page.screenshot(path=str(IMG / "installer.png"))
        assert not net.problems(), net.problems()
    finally:
        context.close()


def _audit_done(stack, region: str):
    """A finished audit of the region, run through the API; its id."""
    h = _auth(stack, "t-auditor")
    r = httpx.post(f"{stack.base}/api/v1/audits", headers=h, json={"region": region}, timeout=20)
    assert r.status_code in (200, 201, 202), r.text
    job = r.json()["id"]

    def finished():
        got = httpx.get(f"{stack.base}/api/v1/audits/{job}", headers=h, timeout=20).json()
        return got["status"] != "running" and got

    assert wait_for(finished, timeout=60)["status"] == "done"
    return job


def test_a_late_answer_about_an_earlier_audit_never_replaces_a_new_run(stack, browser, cameras):
    """The page asks for the region's latest audit as it opens; the auditor starts a run before
    that answer arrives. Held until the new run is done, the late answer must not put the earlier
    audit back (before, it did, and the page then went on polling both)."""
    region = "360983000000"
    earlier = _audit_done(stack, region)
    context, page, net = open_page(browser)
    held = []

    def hold(route):
        held.append((route, route.fetch()))

    try:
        page.route("**/api/v1/audits?region=*status=done*", hold)
        sign_in(page, stack.base, f"/audit?region={region}", "t-auditor", "auditor-pass-1")
        page.locator("#gw-a-region[data-ready='1']").wait_for(timeout=10000)
        for _ in range(200):  # route handlers run while Playwright is waiting, not in a sleep
            if held:
                break
            page.wait_for_timeout(50)
        assert held, "the page never asked for the region's latest audit"
        page.click("#gw-a-run")
        page.wait_for_function(
            "() => { const s = document.getElementById('gw-a-status');"
            " return s.getAttribute('data-status') === 'done' && s.hasAttribute('data-job'); }",
            timeout=60000,
        )
        newer = page.get_attribute("#gw-a-status", "data-job")
        assert newer != str(earlier)
        for route, response in held:
            route.fulfill(response=response)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1500)  # a poll of the earlier audit, had it started, would be back
        assert page.get_attribute("#gw-a-status", "data-job") == newer
        assert page.get_attribute("#gw-a-status", "data-status") == "done"
    finally:
        context.close()


def test_auditor_runs_an_audit_and_sees_the_choropleth(stack, browser, cameras):
    context, page, net = open_page(browser)
    try:
        sign_in(page, stack.base, "/audit?region=360983000000", "t-auditor", "auditor-pass-1")
        page.locator("#gw-a-region[data-ready='1']").wait_for(timeout=10000)
        assert page.input_value("#gw-a-region") == "360983000000"
        page.click("#gw-a-run")
        page.wait_for_function(
            "() => ['done', 'failed'].includes(document.getElementById('gw-a-status').getAttribute('data-status'))",
            timeout=60000,
        )
        assert page.get_attribute("#gw-a-status", "data-status") == "done", page.inner_text(
            "#gw-a-status"
        )
        page.locator("#gw-a-summary tr[data-rule]").first.wait_for(timeout=5000)
        page.wait_for_function(
            "() => document.querySelectorAll('path.gw-choropleth').length >= 2", timeout=10000
        )
        assert page.locator("#gw-a-failures tr.gw-failure").count() >= 1
        with page.expect_download() as download:
            page.click("#gw-a-csv")
        assert "360983000000" in Path(download.value.path()).read_text(encoding="utf-8")
        page.select_option("#gw-a-level", "4")
        page.wait_for_function(
            "() => document.querySelectorAll('path.gw-choropleth').length == 1", timeout=10000
        )
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(IMG / "audit.png"))
        assert not net.problems(), net.problems()
    finally:
        context.close()
