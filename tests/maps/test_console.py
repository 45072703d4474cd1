"""The operator's console in Chromium (network limited to localhost): a complete, calm alarm queue."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from ingest.alarms import AlarmIn, store_alarms
from ingest.events import emit_events
from tests.api.fixtures import PASSWORDS, VILLAGE_A1, device_id
from tests.maps.browser import newest_first, open_page, sign_in
from tests.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser]

IMG = Path(__file__).resolve().parents[2] / "bench" / "out" / "screens"
IMG.mkdir(parents=True, exist_ok=True)
BULK = 5000


def _auth(stack, user):
    return {"Authorization": f"Bearer {stack.token(user, PASSWORDS[user][1])}"}


@pytest.fixture(scope="module")
def camera(stack):
    """One camera in village A1 (东村), facing north."""
    body = {
        "id": device_id(),
        "lon": 115.3452,
        "lat": 28.3952,
        "heading_deg": 0,
        "focal_mm": 4,
        "name": "控制台测试杆",
    }
    r = httpx.post(
        f"{stack.base}/api/v1/devices", headers=_auth(stack, "t-installer"), json=body, timeout=20
    )
    assert r.status_code == 201, r.text
    return body["id"]


def _raise(engine, dev, kind="intrusion", severity=2, ago=0.0, lon=115.3452, lat=28.3953):
    msg = f"c-{dev}-{time.time_ns()}"
    with engine.begin() as conn:
        out = store_alarms(conn, [AlarmIn(dev, msg, kind, severity, time.time() - ago, lon, lat)])
        emit_events(conn, out.events())
    return out.new[0]["id"]


@pytest.fixture()
def clean_queue(engine):
    """Every open alarm is closed before and after (other tests' alarms must not fill the list)."""

    def close():
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE alarms SET state = 'resolved', closed_by = 'test', closed_at = now() "
                    "WHERE state IN ('new', 'acknowledged', 'dispatched')"
                )
            )

    close()
    yield
    close()


def _open_map(stack, browser):
    context, page, net = open_page(browser)
    sign_in(page, stack.base, "/map", "t-operator", "operator-pass-1")
    try:
        page.wait_for_selector("#gw-conn[data-state=live]", timeout=10000)
    except Exception:
        context.close()
        raise AssertionError(f"the map did not go live: {net.problems()}") from None
    return context, page, net


def test_5000_open_alarms_nothing_hidden(stack, browser, camera, engine, clean_queue):
    # 5,000 open alarms: the 12 severity-1 ones are the OLDEST (the old page lost exactly those)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO alarms (device_id, msg_id, kind, severity, position, region_code, raised_at, "
                "last_raised_at, state) SELECT :d, 'bulk-' || g, "
                "(ARRAY['intrusion','smoke','panic','tamper'])[1 + g % 4], "
                "CASE WHEN g <= 12 THEN 1 ELSE 2 + g % 3 END, "
                "ST_SetSRID(ST_MakePoint(115.31 + (g % 97) * 0.0009, 28.36 + (g % 89) * 0.0007), 4326), "
                ":r, now() - make_interval(secs => 100000 - g), now() - make_interval(secs => 100000 - g), 'new' "
                "FROM generate_series(1, :n) g"
            ),
            {"d": camera, "r": VILLAGE_A1, "n": BULK},
        )
    context, page, net = _open_map(stack, browser)
    try:
        page.wait_for_function(
            f"() => Number(document.getElementById('gw-counts').getAttribute('data-total')) === {BULK}",
            timeout=15000,
        )
        assert page.inner_text("#gw-c-sev-1") == "12"
        assert page.inner_text("#gw-n-alarms") == str(BULK)
        page.wait_for_function(
            "() => Number(document.getElementById('gw-alarms').getAttribute('data-loaded')) > 0"
        )
        # the DOM holds one page, not 5,000 rows; the most severe come first
        loaded = int(page.get_attribute("#gw-alarms", "data-loaded"))
        assert loaded == 100 and page.locator("#gw-alarms > li").count() == 100
        sevs = page.eval_on_selector_all(
            "#gw-alarms > li", "els => els.map(e => Number(e.dataset.severity))"
        )
        assert sevs[:12] == [1] * 12 and sevs == sorted(sevs)
        first = page.locator("#gw-alarms > li").first
        assert "东村" in first.inner_text() and "筠阳街道" in first.inner_text()
        # scrolling to the end loads the next page
        page.eval_on_selector("#gw-alarms", "el => { el.scrollTop = el.scrollHeight; }")
        page.wait_for_function(
            "() => Number(document.getElementById('gw-alarms').getAttribute('data-loaded')) >= 200",
            timeout=10000,
        )
        ids = page.eval_on_selector_all("#gw-alarms > li", "els => els.map(e => e.dataset.alarmId)")
        assert len(ids) == len(set(ids))
        # an alarm that arrives while the list is being reloaded is not lost with the old rows:
        # hold the reload's answer, raise a severity-3 alarm (it sorts past the first page), let
        # the answer through: the alarm is announced behind the banner
        held = []

        def reload_of_the_list(url: str) -> bool:
            return "/api/v1/alarms?" in url and "order=severity" in url and "offset=0" in url

        def hold(route) -> None:
            held.append(route)

        page.route(reload_of_the_list, hold)
        page.select_option("#gw-f-order", "newest")
        gen = int(page.get_attribute("#gw-alarms", "data-generation"))
        page.select_option("#gw-f-order", "severity")
        assert wait_for(lambda: page.wait_for_timeout(50) or held, 10)
        batches = int(page.get_attribute("#gw-alarms", "data-batches") or 0)
        late = _raise(engine, camera, severity=3)
        assert wait_for(
            lambda: (
                page.wait_for_timeout(50)
                or int(page.get_attribute("#gw-alarms", "data-batches") or 0) > batches
            ),
            10,
        )
        held[0].continue_()
        page.unroute(reload_of_the_list, hold)
        assert wait_for(
            lambda: (
                page.wait_for_timeout(50)
                or int(page.get_attribute("#gw-alarms", "data-generation")) > gen + 1
            ),
            10,
        )
        page.locator("#gw-new-banner[data-n='1']").wait_for(timeout=5000)
        assert page.locator(f"#gw-alarms > li[data-alarm-id='{late}']").count() == 0
        # the severity chip filters; the counts stay the server's
        page.click("#gw-counts .gw-chip[data-sev='1']")
        page.wait_for_function("() => document.getElementById('gw-n-alarms').textContent === '12'")
        wait_for(lambda: page.locator("#gw-alarms > li").count() == 12, 10)
        page.screenshot(path=str(IMG / "console-5000.png"))
        assert not net.problems(), net.problems()
    finally:
        context.close()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM alarms WHERE msg_id LIKE 'bulk-%'"))


def test_new_alarms_wait_behind_a_banner_while_the_pointer_is_on_the_list(
    stack, browser, camera, engine, clean_queue
):
    # one device: repeats of a kind would merge
    kinds = ("smoke", "tamper", "motion", "door_forced")
    ids = [_raise(engine, camera, k, 3, ago=600 - i) for i, k in enumerate(kinds)]
    context, page, net = _open_map(stack, browser)
    try:
        wait_for(lambda: page.locator("#gw-alarms > li").count() == 4, 10)
        row = page.locator(f"#gw-alarms > li[data-alarm-id='{ids[2]}']")
        row.hover()
        before = row.bounding_box()
        urgent = _raise(engine, camera, "panic", 1)  # sorts first: would push every row down
        page.locator("#gw-new-banner[data-n='1']").wait_for(timeout=5000)
        assert page.locator(f"#gw-alarms > li[data-alarm-id='{urgent}']").count() == 0
        assert row.bounding_box() == before
        assert "sev-1" in page.get_attribute("#gw-new-banner", "class")
        page.click("#gw-new-banner")
        page.locator(f"#gw-alarms > li[data-alarm-id='{urgent}']").wait_for(timeout=5000)
        first = page.locator("#gw-alarms > li").first.get_attribute("data-alarm-id")
        assert first == str(urgent)
        assert page.locator("#gw-new-banner").is_hidden()
        # with the pointer away from the list, a new alarm goes straight to its place
        page.mouse.move(200, 300)
        page.evaluate("document.getElementById('gw-alarms').scrollTop = 0")
        later = _raise(engine, camera, "intrusion", 2)
        page.locator(f"#gw-alarms > li[data-alarm-id='{later}'].gw-flash").wait_for(timeout=5000)
        order = page.eval_on_selector_all(
            "#gw-alarms > li", "els => els.map(e => Number(e.dataset.alarmId))"
        )
        assert order[:2] == [urgent, later]
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_trail_with_notes_and_bulk_acknowledge(stack, browser, camera, engine, clean_queue):
    a, b, c = (
        _raise(engine, camera, k, 2, ago=30 - i) for i, k in enumerate(("smoke", "tamper", "panic"))
    )
    context, page, net = _open_map(stack, browser)
    try:
        wait_for(lambda: page.locator("#gw-alarms > li").count() == 3, 10)
        row = page.locator(f"#gw-alarms > li[data-alarm-id='{a}']")
        row.click()
        row.locator(".gw-a-detail .gw-trail li[data-step=new]").wait_for(timeout=5000)
        assert "东村" in row.locator(".gw-a-detail").inner_text()
        row.locator(".gw-a-note").fill("看到烟雾 <b>smoke</b> seen")
        row.locator(".gw-a-actions button[data-action=acknowledge]").click()
        step = row.locator(".gw-trail li[data-step=acknowledged]")
        step.wait_for(timeout=5000)
        assert "看到烟雾 <b>smoke</b> seen" in step.inner_text()  # shown as text, never as markup
        assert step.locator("b >> text=smoke").count() == 0
        # bulk: the other two with one note
        page.locator(f"#gw-alarms > li[data-alarm-id='{b}'] .gw-a-pick").check()
        page.locator(f"#gw-alarms > li[data-alarm-id='{c}'] .gw-a-pick").check()
        assert page.inner_text("#gw-bulk-n") == "2"
        page.fill("#gw-bulk-note", "同一起事件")
        page.click("#gw-bulk-ack")
        page.locator(f"#gw-alarms > li[data-alarm-id='{c}'][data-state=acknowledged]").wait_for(
            timeout=5000
        )
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT alarm_id, actor, note FROM alarm_events WHERE state = 'acknowledged' "
                    "AND alarm_id = ANY(:ids) ORDER BY alarm_id"
                ),
                {"ids": [a, b, c]},
            ).all()
        assert [tuple(r) for r in rows] == [
            (a, "t-operator", "看到烟雾 <b>smoke</b> seen"),
            (b, "t-operator", "同一起事件"),
            (c, "t-operator", "同一起事件"),
        ]
        # search by village, then by a code that matches nothing
        page.fill("#gw-q", "东村")
        wait_for(lambda: page.inner_text("#gw-n-alarms") == "3", 10)
        page.fill("#gw-q", "99999999")
        page.locator("#gw-no-alarms:not(.gw-hidden)").wait_for(timeout=5000)
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_the_open_alarm_stays_open_when_the_list_reloads(
    stack, browser, camera, engine, clean_queue
):
    """An operator reading an alarm's details keeps them when the list is loaded again (a
    filter or order change, a reconnect): the row is drawn anew, selected and with details."""
    a = _raise(engine, camera, "smoke", 2, ago=20)
    b = _raise(engine, camera, "panic", 2, ago=10)
    context, page, net = _open_map(stack, browser)
    try:
        row = page.locator(f"#gw-alarms > li[data-alarm-id='{a}']")
        row.click()
        row.locator(".gw-a-detail .gw-trail li[data-step=new]").wait_for(timeout=10000)
        newest_first(page)  # a reset load of the list
        ids = page.eval_on_selector_all(
            "#gw-alarms > li", "els => els.map(e => +e.dataset.alarmId)"
        )
        assert ids == [b, a]  # the reload happened: newest first now
        again = page.locator(f"#gw-alarms > li.selected[data-alarm-id='{a}']")
        again.locator(".gw-a-detail .gw-trail li[data-step=new]").wait_for(timeout=10000)
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_an_alarm_opened_while_the_list_reloads_stays_open(
    stack, browser, camera, engine, clean_queue
):
    """An alarm that arrives while a reset load is in flight, and that the operator clicks before
    that page lands, stays in the new list, selected and with its details: the page was asked for
    before the alarm existed, and the pointer on the list (calm) used to send it behind the
    "N new" banner, so the row the operator was reading vanished (seen in CI)."""
    context, page, net = _open_map(stack, browser)
    held = []
    try:
        wait_for(lambda: page.get_attribute("#gw-alarms", "data-generation") == "1", 10)
        newest = "**/api/v1/alarms?*order=newest*"

        def hold(route) -> None:
            # the newest-first page is asked of the server now, and handed to the page only when
            # the test lets it go
            if held:
                route.continue_()
            else:
                held.append((route, route.fetch()))

        page.route(newest, hold)
        page.select_option("#gw-f-order", "newest")
        for _ in range(100):
            if held:
                break
            page.wait_for_timeout(100)
        assert held, "the reset load was not asked for"
        a = _raise(engine, camera, "smoke", 2)
        row = page.locator(f"#gw-alarms > li[data-alarm-id='{a}']")
        row.wait_for(timeout=10000)  # drawn from the stream into the old list
        row.click()
        row.locator(".gw-a-detail .gw-trail li[data-step=new]").wait_for(timeout=10000)
        route, response = held[0]
        # the page lands without the alarm; the pointer is on the list
        route.fulfill(response=response)
        assert wait_for(lambda: page.get_attribute("#gw-alarms", "data-generation") == "2", 10)
        again = page.locator(f"#gw-alarms > li.selected[data-alarm-id='{a}']")
        again.locator(".gw-a-detail .gw-trail li[data-step=new]").wait_for(timeout=10000)
        assert page.get_attribute("#gw-new-banner", "data-n") == "0"
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_history_lists_closed_alarms_and_exports(stack, browser, camera, engine, clean_queue):
    aid = _raise(engine, camera, "panic", 1, ago=5)
    h = _auth(stack, "t-operator")
    for step, note in (("acknowledge", None), ("false-alarm", "误触 pressed by a child")):
        r = httpx.post(
            f"{stack.base}/api/v1/alarms/{aid}/{step}",
            headers=h,
            json={"note": note} if note else {},
            timeout=10,
        )
        assert r.status_code == 200, r.text
    context, page, net = _open_map(stack, browser)
    try:
        page.click("#gw-tab-history")
        page.select_option("#gw-h-state", "false_alarm")
        page.select_option("#gw-h-sev", "1")
        row = page.locator(f"#gw-h-rows tr[data-alarm-id='{aid}']")
        row.wait_for(timeout=10000)
        row.click()
        page.locator("#gw-h-detail .gw-trail li[data-step=false_alarm]").wait_for(timeout=5000)
        assert "误触 pressed by a child" in page.inner_text("#gw-h-detail")
        with page.expect_download() as download:
            page.click("#gw-h-csv")
        body = Path(download.value.path()).read_text(encoding="utf-8-sig")
        assert str(aid) in body and "false_alarm" in body
        with page.expect_download() as download:
            page.click("#gw-h-xlsx")
        assert Path(download.value.path()).read_bytes()[:2] == b"PK"
        page.screenshot(path=str(IMG / "console-history.png"))
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_alarm_camera_opens_its_picture(stack, browser, camera, engine, clean_queue):
    import cv2
    import numpy as np

    ok, jpeg = cv2.imencode(".jpg", np.full((90, 160, 3), 180, np.uint8))
    assert ok
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO device_snapshots (device_id, at, jpeg) VALUES (:d, now(), :j) "
                "ON CONFLICT (device_id) DO UPDATE SET at = now(), jpeg = EXCLUDED.jpeg"
            ),
            {"d": camera, "j": jpeg.tobytes()},
        )
    # the spot is 17 m north of the camera (4 mm: it covers ~23 m) and 6 m north of a PTZ camera
    # with presets south then north (8 mm, ~46 m): both cover it, the PTZ with its preset 2
    ptz = {
        "id": device_id(),
        "lon": 115.3452,
        "lat": 28.3953,
        "ptz": True,
        "focal_mm": 4,
        "focal_max_mm": 20,
        "presets": [{"heading_deg": 180, "focal_mm": 8}, {"heading_deg": 0, "focal_mm": 8}],
        "name": "云台杆",
    }
    r = httpx.post(
        f"{stack.base}/api/v1/devices", headers=_auth(stack, "t-installer"), json=ptz, timeout=20
    )
    assert r.status_code == 201, r.text
    aid = _raise(engine, camera, "intrusion", 1, lon=115.3452, lat=28.39535)
    context, page, net = _open_map(stack, browser)
    try:
        row = page.locator(f"#gw-alarms > li[data-alarm-id='{aid}']")
        row.click()
        cam = row.locator(f".gw-a-cam[data-camera-id='{camera}']")
        cam.wait_for(timeout=5000)
        suggested = row.locator(f".gw-a-cam.covers[data-camera-id='{ptz['id']}'][data-preset='2']")
        assert suggested.count() == 1
        assert any(t in suggested.inner_text() for t in ("预置位 2", "preset 2"))
        assert row.locator(f".gw-a-cam.covers[data-camera-id='{camera}']").count() == 1
        cam.click()
        panel = page.locator(f"#gw-cam-panel[data-device-id='{camera}']")
        panel.locator(".gw-snapshot img").wait_for(timeout=10000)
        page.wait_for_function(
            "() => { const i = document.querySelector('#gw-cam-panel .gw-snapshot-img'); return i && i.naturalWidth === 160; }",
            timeout=10000,
        )
        assert panel.locator(".gw-snapshot-age").count() == 1
        page.screenshot(path=str(IMG / "console-camera.png"))
        assert not net.problems(), net.problems()
    finally:
        context.close()


HOSTILE = '<img src=x onerror="window.__xss=1">杆'


def test_camera_panel_health_history_optics_and_alarms(stack, browser, engine, clean_queue):
    import json
    from datetime import UTC, datetime, timedelta

    import cv2
    import numpy as np

    body = {
        "id": device_id(),
        "lon": 115.3462,
        "lat": 28.3962,
        "heading_deg": 45,
        "focal_mm": 6,
        "name": HOSTILE,
    }
    r = httpx.post(
        f"{stack.base}/api/v1/devices", headers=_auth(stack, "t-installer"), json=body, timeout=20
    )
    assert r.status_code == 201, r.text
    cam = body["id"]
    now = datetime.now(UTC)
    ok, jpeg = cv2.imencode(".jpg", np.full((72, 96, 3), 40, np.uint8))
    assert ok
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE devices SET registered_at = :t WHERE id = :d"),
            {"d": cam, "t": now - timedelta(hours=48)},
        )
        conn.execute(
            text(
                "INSERT INTO camera_health (device_id, ts, intact, faults, thumbnail) VALUES "
                "(:d, :a, false, CAST(:f AS jsonb), :j), (:d, :b, false, CAST(:f AS jsonb), NULL)"
            ),
            {
                "d": cam,
                "a": now - timedelta(minutes=50),
                "b": now - timedelta(minutes=5),
                "f": json.dumps(["occlusion"]),
                "j": jpeg.tobytes(),
            },
        )
        conn.execute(
            text(
                "INSERT INTO device_presence (device_id, started_at, ended_at, end_reason) VALUES "
                "(:d, :a, :b, 'last_will')"
            ),
            {"d": cam, "a": now - timedelta(hours=12), "b": now - timedelta(hours=6)},
        )
    aid = _raise(engine, cam, "tamper", 2)
    context, page, net = _open_map(stack, browser)
    try:
        page.evaluate("id => gw.live.openCamera(id, null)", cam)
        panel = page.locator(f"#gw-cam-panel[data-device-id='{cam}']")
        panel.wait_for(timeout=10000)
        # the hostile name is text, never markup
        assert panel.locator(".gw-cp-name").inner_text() == HOSTILE
        assert panel.locator(".gw-cp-name img").count() == 0
        fault = panel.locator(".gw-cp-health .gw-cp-fault[data-fault=occlusion]")
        fault.wait_for(timeout=10000)
        assert "occlusion" in fault.inner_text() and "since" in fault.inner_text()
        page.wait_for_function(
            "() => { const i = document.querySelector('#gw-cam-panel .gw-cp-evidence'); return i && i.complete && i.naturalWidth === 96; }",
            timeout=10000,
        )
        share = panel.locator(".gw-cp-presence[data-share]")
        share.wait_for(timeout=10000)
        assert abs(float(share.get_attribute("data-share")) - 0.25) < 0.01
        assert panel.locator(".gw-cp-bar i.gw-cp-up").count() == 1
        optics = panel.locator(".gw-cp-optics").inner_text()
        assert "6 mm" in optics and "45°" in optics
        linked = panel.locator(f".gw-cp-alarm[data-alarm-id='{aid}'][data-relation=own]")
        linked.wait_for(timeout=10000)
        linked.click()
        page.locator(f"#gw-alarms > li.selected[data-alarm-id='{aid}']").wait_for(timeout=10000)
        assert page.evaluate("window.__xss") is None
        page.screenshot(path=str(IMG / "console-camera-panel.png"))
        page.keyboard.press("Escape")
        assert page.locator("#gw-cam-panel").count() == 0
        assert not net.problems(), net.problems()
    finally:
        context.close()


def test_devices_tab_search_offline_list_and_kpi_strip(stack, browser, engine, clean_queue):
    from datetime import UTC, datetime, timedelta

    h = _auth(stack, "t-installer")
    ids = []
    for n, name in enumerate(("晒谷场杆", "渡口杆")):
        body = {
            "id": device_id(),
            "lon": 115.3810 + n * 0.001,
            "lat": 28.4810,
            "heading_deg": 0,
            "focal_mm": 4,
            "name": name,
        }
        r = httpx.post(f"{stack.base}/api/v1/devices", headers=h, json=body, timeout=20)
        assert r.status_code == 201, r.text
        ids.append(body["id"])
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE devices SET registered_at = :t WHERE id = ANY(:ids)"),
            {"t": now - timedelta(hours=48), "ids": ids},
        )
        conn.execute(text("UPDATE devices SET status = 'offline' WHERE id = :d"), {"d": ids[1]})
        conn.execute(
            text(
                "INSERT INTO device_presence (device_id, started_at, ended_at, end_reason) "
                "VALUES (:d, :a, :b, 'missed_heartbeats')"
            ),
            {"d": ids[1], "a": now - timedelta(hours=30), "b": now - timedelta(hours=12)},
        )
        conn.execute(
            text(
                "INSERT INTO camera_health (device_id, ts, intact, faults) "
                "VALUES (:d, now(), false, '[\"blur\"]'::jsonb)"
            ),
            {"d": ids[1]},
        )
    aid = _raise(engine, ids[0], "panic", 1, lon=115.3811, lat=28.4811)
    context, page, net = _open_map(stack, browser)
    try:
        # the KPI strip follows the view: two cameras, one offline for the last 12 h, one faulty
        page.evaluate("() => gw.map.fitBounds([[28.4805, 115.3805], [28.4815, 115.3825]])")
        page.wait_for_function(
            "() => document.getElementById('gw-kpi').dataset.cameras === '2'", timeout=10000
        )
        kpi = page.locator("#gw-kpi")
        assert kpi.get_attribute("data-faulty") == "1" and kpi.get_attribute("data-sev1") == "1"
        # camera 0: no presence at all (0 of 24 h); camera 1: 12 of 24 h
        assert abs(float(kpi.get_attribute("data-online-rate")) - 0.25) < 0.01
        assert page.inner_text("#gw-k-online") == "25%"
        # find by name in the devices tab
        page.click("#gw-tab-devices")
        page.fill("#gw-d-q", "渡口")
        row = page.locator(f"#gw-d-rows tr[data-device-id='{ids[1]}']")
        row.wait_for(timeout=10000)
        wait_for(lambda: page.locator("#gw-d-rows tr").count() == 1, 10)
        assert "西村" in row.inner_text() and row.get_attribute("data-health") == "faulty"
        # the offline list says since when
        page.fill("#gw-d-q", "")
        page.select_option("#gw-d-status", "offline")
        page.check("#gw-d-view")
        page.wait_for_function(
            f"() => {{ const r = document.querySelectorAll('#gw-d-rows tr'); return r.length === 1 && r[0].dataset.deviceId === '{ids[1]}'; }}",
            timeout=10000,
        )
        assert "offline since" in page.inner_text("#gw-d-rows")
        # a row opens the device's panel
        row.click()
        page.locator(
            f"#gw-cam-panel[data-device-id='{ids[1]}'] .gw-cp-fault[data-fault=blur]"
        ).wait_for(timeout=10000)
        page.screenshot(path=str(IMG / "console-devices.png"))
        assert aid and not net.problems(), net.problems()
    finally:
        context.close()


def test_live_view_plays_in_the_browser(stack, browser, engine, rtsp_source):
    body = {"id": device_id(), "lon": 115.3472, "lat": 28.3972, "heading_deg": 90, "focal_mm": 4}
    r = httpx.post(
        f"{stack.base}/api/v1/devices", headers=_auth(stack, "t-installer"), json=body, timeout=20
    )
    assert r.status_code == 201, r.text
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE devices SET stream_url = :u WHERE id = :d"),
            {"u": f"{rtsp_source}/cam3", "d": body["id"]},
        )
    context, page, net = _open_map(stack, browser)
    try:
        page.evaluate("id => gw.live.openCamera(id, null)", body["id"])
        start = page.locator("#gw-cam-panel .gw-cp-live .gw-live-start")
        start.wait_for(timeout=10000)
        # hls.js (540 kB) is not part of the map's first load: it comes with the first live view
        assert page.evaluate("() => typeof window.Hls") == "undefined"
        start.click()
        page.locator("#gw-cam-panel .gw-cp-live[data-state=playing]").wait_for(timeout=20000)
        assert page.evaluate("() => typeof window.Hls") == "function"
        # frames are decoded and time advances
        page.wait_for_function(
            "() => { const v = document.querySelector('.gw-live-video'); return v && v.currentTime > 1 && v.videoWidth > 0; }",
            timeout=20000,
        )
        t1 = page.evaluate("() => document.querySelector('.gw-live-video').currentTime")
        page.wait_for_function(
            f"() => document.querySelector('.gw-live-video').currentTime > {t1} + 1", timeout=15000
        )
        assert page.evaluate("() => document.querySelector('.gw-live-video').videoWidth") == 480
        page.screenshot(path=str(IMG / "console-live.png"))
        playlist = page.evaluate(
            "() => performance.getEntriesByType('resource').map(e => e.name).find(n => n.endsWith('index.m3u8'))"
        )
        assert playlist and "/api/v1/live/" in playlist
        # while it started and played, nothing failed but the playlist's polls before the first
        # segment existed (404 until FFmpeg writes it)
        assert not [p for p in net.problems() if "index.m3u8" not in p], net.problems()
        # closing the panel ends the viewer (and with it the camera's FFmpeg)
        page.keyboard.press("Escape")
        wait_for(
            lambda: (
                page.evaluate(
                    "u => fetch(u, {credentials: 'same-origin'}).then(r => r.status)", playlist
                )
                == 404
            ),
            10,
        )
        # after the close, only this viewer's own requests may have been cut off (a segment in
        # flight is aborted, the playlist polled after the stop is a 404); nothing else fails
        live_url = playlist.rsplit("/", 1)[0] + "/"
        assert not [p for p in net.problems() if live_url not in p], net.problems()
    finally:
        context.close()
