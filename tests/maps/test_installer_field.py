"""The installer in the field, in Chromium on a phone viewport: opens at their region, errors that
say what is wrong (with the typed point on the map), GPS, compass, a scanned label, find / fix /
retire, and registrations queued while the phone is offline."""

from __future__ import annotations

import time

import httpx
import pytest
import segno
from sqlalchemy import text

from tests.api.fixtures import BOX_TOWN_A, PASSWORDS, device_id
from tests.maps.browser import open_page, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
CAM = {
    "heading_deg": 90,
    "focal_mm": 4,
    "sensor_format": "1/2.8",
    "resolution_w": 1920,
    "resolution_h": 1080,
}


def wait_js(page, expression: str, timeout_s: float = 10.0) -> None:
    """Poll a JS expression until it is truthy (wait_for_function would eval it, which the page's
    Content-Security-Policy forbids, rightly)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s:g} s: {expression}")
        time.sleep(0.1)


def _auth(stack, user: str) -> dict:
    return {"Authorization": f"Bearer {stack.token(user, PASSWORDS[user][1])}"}


def _phone(browser, stack, **context):
    context_, page, net = open_page(browser, viewport=PHONE, mobile=True)
    for key, value in context.items():
        getattr(context_, key)(**value) if isinstance(value, dict) else getattr(context_, key)(
            *value
        )
    sign_in(page, stack.base, "/install", "t-installer", "installer-pass-1")
    return context_, page, net


def test_opens_at_the_installers_region_and_explains_errors_on_the_map(stack, browser):
    context, page, net = _phone(browser, stack)
    try:
        wait_js(page, "window.gw && gw.map && gw.map.getZoom() >= 9", 10)
        centre = page.evaluate("(() => { const c = gw.map.getCenter(); return [c.lng, c.lat]; })()")
        west, south, east, north = BOX_TOWN_A
        assert west <= centre[0] <= east and south <= centre[1] <= north, centre

        dev = device_id()
        page.fill("#gw-i-id", dev[:19])
        page.fill("#gw-i-lon", "115.35")
        page.fill("#gw-i-lat", "28.40")
        page.click("#gw-i-preview")
        assert "19" in page.inner_text("#gw-i-error")

        page.fill("#gw-i-id", dev)
        page.fill("#gw-i-lon", "28.40")
        page.fill("#gw-i-lat", "115.35")
        page.click("#gw-i-preview")
        error = page.inner_text("#gw-i-error")
        assert "swapped" in error or "填反" in error, error
        assert page.locator(".leaflet-marker-icon").count() == 1  # the typed point is shown
        page.click("#gw-i-swap")
        page.locator("#gw-i-rules li").first.wait_for(timeout=10000)
        assert page.input_value("#gw-i-lon") == "115.35"
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_unassigned_type_code_needs_an_explicit_confirmation(stack, browser, engine, tmp_path):
    context, page, _ = _phone(browser, stack)
    dev = device_id(type_code="199")
    try:
        page.fill("#gw-i-id", dev)
        page.fill("#gw-i-lon", "115.351")
        page.fill("#gw-i-lat", "28.401")
        page.select_option("#gw-i-crs", "wgs84")
        page.click("#gw-i-save")
        page.locator("#gw-i-confirm-type").wait_for(state="visible", timeout=10000)
        assert "199" in page.inner_text("#gw-i-error")
        with engine.connect() as conn:
            assert not conn.execute(text("SELECT 1 FROM devices WHERE id = :i"), {"i": dev}).first()
        page.check("#gw-i-accept-type")
        page.click("#gw-i-save")
        page.locator("#gw-i-where").wait_for(timeout=10000)
        with engine.connect() as conn:
            kind = conn.execute(text("SELECT kind FROM devices WHERE id = :i"), {"i": dev}).scalar()
        assert kind == "other"
        # a photo of the installation, taken right after saving, is kept with the device
        photo = tmp_path / "pole.png"
        segno.make("pole photo stand-in").save(str(photo), scale=20)
        page.set_input_files("#gw-i-photo-add", str(photo))
        page.locator("#gw-i-photos li[data-photo-id]").wait_for(timeout=15000)
        with engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT count(*) FROM device_photos WHERE device_id = :i"), {"i": dev}
                ).scalar()
                == 1
            )
    finally:
        context.close()


def test_gps_and_compass_fill_position_and_heading(stack, browser):
    context, page, net = _phone(
        browser,
        stack,
        grant_permissions={
            "permissions": ["geolocation", "accelerometer", "gyroscope", "magnetometer"]
        },
        set_geolocation={"geolocation": {"longitude": 115.352, "latitude": 28.403, "accuracy": 12}},
    )
    try:
        page.fill("#gw-i-id", device_id())
        page.click("#gw-i-locate")
        wait_js(page, "document.getElementById('gw-i-lat').value !== ''", 10)
        assert float(page.input_value("#gw-i-lon")) == pytest.approx(115.352, abs=1e-6)
        assert float(page.input_value("#gw-i-lat")) == pytest.approx(28.403, abs=1e-6)
        assert page.input_value("#gw-i-crs") == "wgs84"  # browsers give GPS positions
        assert page.locator("path.gw-accuracy").count() == 1
        assert "12" in page.inner_text("#gw-i-accuracy")

        page.click("#gw-i-compass")
        page.evaluate(
            "window.dispatchEvent(new DeviceOrientationEvent('deviceorientationabsolute',"
            " {alpha: 90, beta: 0, gamma: 0, absolute: true}))"
        )
        wait_js(page, "document.getElementById('gw-i-heading').value === '270'", 5)
        page.click("#gw-i-compass")  # hold: later readings no longer move it
        page.evaluate(
            "window.dispatchEvent(new DeviceOrientationEvent('deviceorientationabsolute',"
            " {alpha: 10, beta: 0, gamma: 0, absolute: true}))"
        )
        assert page.input_value("#gw-i-heading") == "270"
        page.locator("#gw-i-rules li").first.wait_for(timeout=10000)
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_the_label_photo_fills_the_code(stack, browser, tmp_path):
    dev = device_id()
    label = tmp_path / "label.png"
    # A real label carries more than the code; the 20 digits are found inside.
    segno.make(f"GB28181:{dev};SN:HK-123", micro=False).save(str(label), scale=8, border=4)
    context, page, net = _phone(browser, stack)
    try:
        page.set_input_files("#gw-i-photo", str(label))
        wait_js(page, f"document.getElementById('gw-i-id').value === '{dev}'", 15)
        assert not net.problems(), net.problems()
    finally:
        context.close()


# Label codes ZXing's reader alone cannot read from a clean photo of their QR code (found by
# decoding 1,000 such labels in Chromium: 56 failed, these three at every scale and blur tried).
ZXING_MISSES = ("36098300001325500126", "36098300001325500542", "36098300001325500826")

DECODE_ALL = """async (labels) => {
  const out = [];
  for (const b64 of labels) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
    const img = new Image();
    img.src = url;
    await img.decode();
    try { out.push(await gw.field.decodeLabel(img, img.naturalWidth, img.naturalHeight)); }
    catch (e) { out.push("failed: " + e); }
    URL.revokeObjectURL(url);
  }
  return out;
}"""


def test_every_clean_label_photo_is_read(stack, browser):
    """A photo of any device's QR label gives its code: 120 labels of consecutive codes and three
    that ZXing's reader misses (1 in 18 of such labels failed before jsQR read QR codes first)."""
    import base64
    import io

    ids = [*ZXING_MISSES, *(device_id(serial=500000 + k) for k in range(120))]
    labels = []
    for dev in ids:
        buf = io.BytesIO()
        segno.make(f"GB28181:{dev};SN:HK-123", micro=False).save(buf, kind="png", scale=8, border=4)
        labels.append(base64.b64encode(buf.getvalue()).decode())
    context, page, net = _phone(browser, stack)
    try:
        wait_js(page, "window.gw && gw.field && typeof gw.field.decodeLabel === 'function'", 10)
        texts = page.evaluate(DECODE_ALL, labels)
        unread = [dev for dev, got in zip(ids, texts, strict=True) if dev not in got]
        assert not unread, f"{len(unread)} of {len(ids)} labels not read: {unread[:10]}"
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_find_fix_and_retire_from_the_phone(stack, browser, engine):
    dev = device_id()
    body = {"id": dev, "lon": 115.353, "lat": 28.404, "name": "桥头杆", **CAM}
    r = httpx.post(f"{stack.base}/api/v1/devices", headers=_auth(stack, "t-installer"), json=body)
    assert r.status_code == 201, r.text
    context, page, net = _phone(browser, stack)
    try:
        page.fill("#gw-i-id", dev)
        page.click("#gw-i-find")
        page.locator("#gw-i-mode:not(.gw-hidden)").wait_for(timeout=10000)
        assert page.input_value("#gw-i-name") == "桥头杆"
        assert page.input_value("#gw-i-heading") == "90"
        page.fill("#gw-i-heading", "180")
        page.fill("#gw-i-lon", "115.3535")
        page.click("#gw-i-save")
        page.locator("#gw-i-where").wait_for(timeout=10000)
        wait_js(page, "!document.getElementById('gw-i-where').textContent.startsWith('…')", 10)
        where = page.inner_text("#gw-i-where")
        assert "东村" in where and "筠阳街道" in where, where  # names, not codes
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT heading_deg, ST_X(position) FROM devices WHERE id = :i"), {"i": dev}
            ).one()
            assert row[0] == pytest.approx(180) and row[1] == pytest.approx(115.3535, abs=1e-6)
        page.click("#gw-i-retire")
        page.fill("#gw-i-retire-reason", "杆体损坏")
        page.click("#gw-i-retire-confirm")
        page.locator("#gw-i-mode.gw-hidden").wait_for(state="attached", timeout=10000)
        with engine.connect() as conn:
            assert conn.execute(
                text("SELECT retired_at IS NOT NULL FROM devices WHERE id = :i"), {"i": dev}
            ).scalar()
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_registrations_made_offline_wait_in_a_queue_and_are_sent(stack, browser, engine):
    dev = device_id()
    context, page, _ = _phone(browser, stack)
    try:
        wait_js(page, "window.gw && gw.install", 10)
        context.set_offline(True)
        page.fill("#gw-i-id", dev)
        page.fill("#gw-i-name", "无信号处")
        page.fill("#gw-i-lon", "115.354")
        page.fill("#gw-i-lat", "28.405")
        page.select_option("#gw-i-crs", "wgs84")
        page.click("#gw-i-save")
        page.locator(f"#gw-i-queue li[data-queued-id='{dev}']").wait_for(timeout=10000)
        with engine.connect() as conn:
            assert not conn.execute(text("SELECT 1 FROM devices WHERE id = :i"), {"i": dev}).first()
        context.set_offline(False)  # the browser fires 'online': the queue is sent
        page.locator("#gw-i-queue-box.gw-hidden").wait_for(state="attached", timeout=15000)
        with engine.connect() as conn:
            who = conn.execute(
                text("SELECT registered_by FROM devices WHERE id = :i"), {"i": dev}
            ).scalar()
        assert who == "t-installer"
    finally:
        context.close()


def test_the_install_page_opens_offline_after_one_visit(stack, browser):
    context, page, _ = _phone(browser, stack)
    try:
        assert page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        page.reload()
        wait_js(page, "navigator.serviceWorker.controller !== null && window.gw && gw.install", 15)
        context.set_offline(True)
        page.reload()
        page.locator("#gw-i-form").wait_for(timeout=10000)
        wait_js(page, "window.gw && window.gw.field", 10)
    finally:
        context.close()


def test_a_refused_queued_registration_is_resolved_from_the_phone(stack, browser, engine):
    """Offline, the installer registers a code someone else registered meanwhile, under a hostile
    name: back online the queue shows the refusal with the server's reason (the name as text,
    nothing run), and 'resolve' opens the existing device with the queued values to save."""
    dev = device_id()
    hostile = '<img src=x onerror="window.__pwned=1">杆'
    body = {"id": dev, "lon": 115.353, "lat": 28.404, "name": "原杆", **CAM}
    r = httpx.post(f"{stack.base}/api/v1/devices", headers=_auth(stack, "t-installer"), json=body)
    assert r.status_code == 201, r.text
    context, page, _ = _phone(browser, stack)
    try:
        wait_js(page, "window.gw && gw.install", 10)
        context.set_offline(True)
        page.fill("#gw-i-id", dev)
        page.fill("#gw-i-name", hostile)
        page.fill("#gw-i-lon", "115.3538")
        page.fill("#gw-i-lat", "28.4045")
        page.select_option("#gw-i-crs", "wgs84")
        page.click("#gw-i-save")
        page.locator(f"#gw-i-queue li[data-queued-id='{dev}']").wait_for(timeout=10000)
        context.set_offline(False)
        item = page.locator(f"#gw-i-queue li[data-queued-id='{dev}'][data-state='conflict']")
        item.wait_for(timeout=15000)
        assert hostile in item.inner_text()  # shown as text
        assert page.locator("#gw-i-queue img").count() == 0
        item.locator(".gw-i-resolve").click()
        page.locator("#gw-i-mode:not(.gw-hidden)").wait_for(timeout=10000)
        wait_js(page, "document.getElementById('gw-i-name').value.length > 3", 10)
        assert page.input_value("#gw-i-name") == hostile
        assert page.input_value("#gw-i-lon") == "115.353800"
        mode = page.inner_text("#gw-i-mode-text")  # the refusal and its reason stay in view
        assert ("被拒绝" in mode or "refused" in mode) and dev in mode, mode
        page.locator("#gw-i-queue-box.gw-hidden").wait_for(state="attached", timeout=5000)
        page.click("#gw-i-save")
        page.locator("#gw-i-where").wait_for(timeout=10000)
        with engine.connect() as conn:
            name, lon = conn.execute(
                text("SELECT name, ST_X(position) FROM devices WHERE id = :i"), {"i": dev}
            ).one()
        assert name == hostile and lon == pytest.approx(115.3538, abs=1e-6)
        assert page.evaluate("() => window.__pwned === undefined")
    finally:
        context.close()
