"""Screenshots of the three views for the README (docs/img/), on the demo county, in Debian's Chromium.

Run:  .venv/bin/python -m bench.map_screens

Same set-up as bench.map_bench (own database gridwatch_screens on the project-local PostGIS, a
private Mosquitto, `gridwatch serve` and `gridwatch ingest` as subprocesses); a few alarms are
published from cameras in view so the live map has something to show.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import httpx

from bench.map_bench import CHROMIUM_ARGS, OUT, say, start_stack

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
DB_NAME = "gridwatch_screens"
SEED = 28181  # the demo's seed: the same county as ./gw demo
USERS = {
    "operator": ("operator", "operator-demo"),
    "installer": ("installer", "installer-demo"),
    "auditor": ("auditor", "auditor-demo"),
}


def main() -> int:
    from sqlalchemy import text

    from api.users import ensure_user
    from gridwatch.db import get_engine, migrate
    from gridwatch.services import services_up
    from gridwatch.settings import get_settings
    from ingest.broker_acl import DynsecAccounts
    from simulators.region import generate_region

    IMG.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    settings = get_settings()
    services_up(settings, DynsecAccounts(settings))
    db_url = settings.db_url(DB_NAME)
    migrate(db_url)
    engine = get_engine(url=db_url)
    say(f"demo county: {generate_region(engine, seed=SEED, scale='county')}")
    with engine.begin() as conn:
        for name, (role, password) in USERS.items():
            ensure_user(conn, name, password, role, regions=["360121000000"])
        conn.execute(
            text(
                "UPDATE alarms SET state = 'resolved', closed_by = 'screens', closed_at = now() WHERE state IN ('new','acknowledged','dispatched')"
            )
        )
        town = conn.execute(
            text(
                "SELECT code, ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM regions WHERE level = 4 ORDER BY code LIMIT 1"
            )
        ).one()
        cams = conn.execute(
            text(
                "SELECT id, ST_X(position), ST_Y(position), heading_deg, range_m FROM devices WHERE fov IS NOT NULL AND region_code LIKE :p "
                "ORDER BY position <-> ST_SetSRID(ST_MakePoint(:x, :y), 4326) LIMIT 60"
            ),
            {"p": town[0][:9] + "%", "x": town[1], "y": town[2]},
        ).all()

    stack = start_stack(db_url, "screens_")
    broker, base = stack.broker, stack.base
    try:
        tokens = {
            n: httpx.post(f"{base}/api/v1/auth/token", json={"username": n, "password": p}).json()[
                "access_token"
            ]
            for n, (_r, p) in USERS.items()
        }
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            live(browser, base, tokens["operator"], broker.port, cams, "en", "live-map.png")
            live(browser, base, tokens["operator"], broker.port, cams[20:], "zh", "live-map-zh.png")
            overview(browser, base, tokens["operator"])
            installer(browser, base, tokens["installer"], cams[0])
            audit(browser, base, tokens["auditor"])
            browser.close()
    finally:
        stack.stop()
    say(f"screenshots in {IMG}")
    return 0


def _context(browser, base: str, token: str, lang: str, **kw):
    from tests.maps.browser import add_session

    context = browser.new_context(viewport=kw.pop("viewport", {"width": 1440, "height": 860}), **kw)
    add_session(context, base, token)
    context.add_init_script(f"localStorage.setItem('gw.lang', '{lang}');")
    return context


def _publish_alarms(
    broker_port: int, cams, kinds=("intrusion", "smoke", "panic", "motion")
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"screens-{uuid.uuid4().hex[:6]}")
    c.connect("127.0.0.1", broker_port)
    c.loop_start()
    for i, (dev, lon, lat, _h, _r) in enumerate(cams[:4]):
        payload = {
            "msg_id": uuid.uuid4().hex,
            "ts": time.time(),
            "kind": kinds[i % len(kinds)],
            "severity": 1 + i % 3,
            "lon": lon + 0.00012,
            "lat": lat + 0.00008,
        }
        c.publish(f"gw/v1/{dev}/alarm", json.dumps(payload), qos=1).wait_for_publish(5)
        time.sleep(0.3)
    c.loop_stop()
    c.disconnect()


def live(browser, base: str, token: str, broker_port: int, cams, lang: str, name: str) -> None:
    context = _context(browser, base, token, lang)
    page = context.new_page()
    page.goto(f"{base}/map")
    page.wait_for_selector("#gw-conn[data-state=live]", timeout=20000)
    lon, lat = cams[0][1], cams[0][2]
    page.evaluate(f"gw.map.setView([{lat}, {lon}], 16)")
    _publish_alarms(broker_port, cams)
    page.locator(".gw-alarm").nth(3).wait_for(timeout=10000)
    page.locator(".gw-alarm").last.click()
    page.wait_for_selector("path.gw-cover-highlight", timeout=10000)
    page.wait_for_load_state("networkidle")
    time.sleep(1.0)
    page.screenshot(path=str(IMG / name))
    context.close()


def overview(browser, base: str, token: str) -> None:
    context = _context(browser, base, token, "en")
    page = context.new_page()
    page.goto(f"{base}/map")
    page.wait_for_selector(".leaflet-tile-container svg path", timeout=20000)
    page.wait_for_load_state("networkidle")
    time.sleep(1.0)
    page.screenshot(path=str(IMG / "live-map-county.png"))
    context.close()


def installer(browser, base: str, token: str, cam) -> None:
    from hardware.crs import wgs84_to_gcj02

    context = _context(
        browser,
        base,
        token,
        "zh",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    page = context.new_page()
    page.goto(f"{base}/install")
    page.wait_for_selector("#gw-i-id")
    dev = cam[0][:14] + "999901"
    glon, glat = wgs84_to_gcj02(cam[1] + 0.0004, cam[2] + 0.0002)
    page.fill("#gw-i-id", dev)
    page.fill("#gw-i-name", "村口卡点 2 号杆")
    page.fill("#gw-i-lon", f"{glon:.6f}")
    page.fill("#gw-i-lat", f"{glat:.6f}")
    page.select_option("#gw-i-crs", "gcj02")
    page.fill("#gw-i-heading", "210")
    page.click("#gw-i-preview")
    page.wait_for_selector("#gw-i-rules li", timeout=15000)
    page.wait_for_load_state("networkidle")
    time.sleep(0.8)
    page.evaluate(
        "document.getElementById('gw-side').scrollTop = document.getElementById('gw-i-preview').offsetTop - 40"
    )
    page.screenshot(path=str(IMG / "installer.png"))
    context.close()


def audit(browser, base: str, token: str) -> None:
    context = _context(browser, base, token, "en")
    page = context.new_page()
    page.goto(f"{base}/audit")
    page.wait_for_selector("#gw-a-region[data-ready='1']", timeout=20000)
    page.click("#gw-a-run")
    page.wait_for_selector("#gw-a-status[data-status=done]", timeout=120000)
    page.wait_for_function(
        "() => document.querySelectorAll('path.gw-choropleth').length > 10", timeout=20000
    )
    page.wait_for_load_state("networkidle")
    time.sleep(0.8)
    page.screenshot(path=str(IMG / "audit.png"))
    context.close()


if __name__ == "__main__":
    sys.exit(main())
