"""The operator's console (bench/map_bench.py --console): first render with 5,000 open alarms,
publish -> DOM p95 under a 100 alarms/s burst, live-view time to first frame and CPU per live
viewer; each beside a baseline measured in the same run.

Run:  .venv/bin/python -m bench.map_bench --console [--open 5000] [--burst 100] [--burst-s 5] [--live 5]

Baselines: the queue against a naive list that fetches every open alarm and draws a row for
each (what the page did before paging); publish -> DOM against the same alarms reaching a plain
SSE client (the hub's share of the latency); time to first frame against FFmpeg alone opening
the RTSP stream and decoding one frame (the camera's floor).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid

import httpx

from bench.map_bench import OUT, free_port, pct, prepare_data, say, start_stack

DB_NAME = "gridwatch_consolebench"

QUEUE_OBSERVER = """
(() => {
  window.__c = { queueReady: null, seen: {} };
  const obs = new MutationObserver(records => {
    // only the added nodes are looked at (scanning every row on each mutation is O(n^2))
    const now = Date.now();
    for (const rec of records) for (const n of rec.addedNodes) {
      if (n.nodeType === 1 && n.matches('#gw-alarms > li[data-alarm-id]')) {
        const id = n.getAttribute('data-alarm-id');
        if (!(id in window.__c.seen)) window.__c.seen[id] = now;
      }
    }
    if (window.__c.queueReady !== null) return;
    const counts = document.getElementById('gw-counts');
    const want = %d;
    if (window.__c.queueReady === null && counts && counts.hasAttribute('data-total')
        && Number(counts.getAttribute('data-total')) >= want
        && (want === 0 || document.querySelector('#gw-alarms > li'))) window.__c.queueReady = performance.now();
  });
  document.addEventListener('DOMContentLoaded', () => obs.observe(document.body, { childList: true, subtree: true }));
})();
"""

# The baseline queue: every open alarm fetched (pages of 1,000) and one row drawn for each.
NAIVE_LIST = """
async () => {
  const t0 = performance.now();
  const all = [];
  for (let offset = 0; ; offset += 1000) {
    const r = await fetch(`/api/v1/alarms?state=open&limit=1000&offset=${offset}`, { credentials: 'same-origin' });
    const page = await r.json();
    all.push(...page.items);
    if (page.next_offset === null || page.next_offset === undefined) break;
  }
  const t1 = performance.now();
  const ul = document.createElement('ul');
  ul.className = 'gw-alarms';
  for (const a of all) {
    const li = document.createElement('li');
    li.className = 'gw-alarm sev-' + a.severity;
    const head = document.createElement('div'); head.className = 'gw-a-head';
    head.textContent = gw.alarmKind(a.kind) + ' · ' + a.state;
    const meta = document.createElement('div'); meta.className = 'gw-a-meta';
    meta.textContent = [a.village_name, a.township_name, a.device_name || a.device_id, gw.time(a.raised_at)].join(' · ');
    const b = document.createElement('button'); b.textContent = gw.t('acknowledge');
    li.append(head, meta, b);
    ul.appendChild(li);
  }
  const side = document.getElementById('gw-queue');
  side.appendChild(ul);
  void ul.offsetHeight;  // layout done
  const t2 = performance.now();
  ul.remove();
  return { rows: all.length, fetch_ms: t1 - t0, total_ms: t2 - t0 };
}
"""

# The page's own queue, reloaded in place (a filter change), until its first page is drawn.
QUEUE_RELOAD = """
async () => {
  const list = document.getElementById('gw-alarms');
  const before = list.getAttribute('data-generation');
  const t0 = performance.now();
  const sel = document.getElementById('gw-f-order');
  sel.value = sel.value === 'severity' ? 'newest' : 'severity';
  sel.dispatchEvent(new Event('change'));
  await new Promise(resolve => {
    const check = () => {
      const rows = list.querySelectorAll(':scope > li').length;
      if (list.getAttribute('data-generation') !== before && rows > 0) resolve();
      else requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  });
  void list.offsetHeight;
  return { rows: list.querySelectorAll(':scope > li').length, total_ms: performance.now() - t0 };
}
"""


def seed_open_alarms(engine, n: int) -> None:
    """n open alarms on real cameras of the bench region, the 12 most severe the oldest."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE alarms SET state = 'resolved', closed_by = 'console_bench', closed_at = now() "
                "WHERE state IN ('new', 'acknowledged', 'dispatched')"
            )
        )
        conn.execute(
            text(
                "WITH cams AS (SELECT id, position, region_code, row_number() OVER (ORDER BY id) AS k "
                "FROM devices WHERE fov IS NOT NULL AND retired_at IS NULL LIMIT :n) "
                "INSERT INTO alarms (device_id, msg_id, kind, severity, position, region_code, "
                "raised_at, last_raised_at, state) SELECT c.id, 'cbench-' || g || '-' || :tag, "
                "(ARRAY['intrusion','smoke','panic','tamper'])[1 + g % 4], "
                "CASE WHEN g <= 12 THEN 1 ELSE 2 + g % 3 END, c.position, c.region_code, "
                "now() - make_interval(secs => 100000 - g), now() - make_interval(secs => 100000 - g), 'new' "
                "FROM generate_series(1, :n) g JOIN cams c ON c.k = 1 + (g - 1) % (SELECT count(*) FROM cams)"
            ),
            {"n": n, "tag": uuid.uuid4().hex[:6]},
        )


def open_console(browser, base: str, token: str, n_open: int):
    from tests.maps.browser import add_session

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    add_session(context, base, token)
    context.add_init_script("localStorage.setItem('gw.lang', 'en');")
    context.add_init_script(QUEUE_OBSERVER % n_open)
    page = context.new_page()
    page.goto(f"{base}/map")
    page.wait_for_function("() => window.__c && window.__c.queueReady !== null", timeout=120_000)
    return context, page


def queue_render(browser, base: str, token: str, n_open: int, repeats: int) -> dict:
    context, page = open_console(browser, base, token, n_open)
    first = page.evaluate("window.__c.queueReady")
    rows = page.locator("#gw-alarms > li").count()
    ours, naive = [], []
    for _ in range(repeats):
        ours.append(page.evaluate(QUEUE_RELOAD)["total_ms"])
        n = page.evaluate(NAIVE_LIST)
        naive.append(n["total_ms"])
    context.close()
    return {
        "first_render_ms": first,
        "dom_rows": rows,
        "reload_p50_ms": pct(ours, 0.5),
        "naive_p50_ms": pct(naive, 0.5),
        "naive_rows": n["rows"],
        "naive_fetch_ms": n["fetch_ms"],
    }


def burst_latency(browser, base, token, broker_port, cams, rate: int, seconds: float) -> dict:
    """rate alarms/s for `seconds` from distinct cameras; DOM (newest-first queue) and a plain SSE
    client both time each alarm's arrival."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    context, page = open_console(browser, base, token, 0)
    page.select_option("#gw-f-order", "newest")
    page.mouse.move(100, 400)  # the pointer on the map, not the list (the list would hold them)
    time.sleep(1.5)
    sse_seen: dict[str, float] = {}
    stop = threading.Event()

    def sse() -> None:
        with (
            httpx.Client(base_url=base, timeout=None) as c,
            c.stream("GET", "/api/v1/stream", headers={"Authorization": f"Bearer {token}"}) as r,
        ):
            kind = None
            for line in r.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "alarm.new":
                    p = json.loads(line[6:]).get("payload", {})
                    if p.get("msg_id") and p["msg_id"] not in sse_seen:
                        sse_seen[p["msg_id"]] = time.time() * 1000

    reader = threading.Thread(target=sse, daemon=True)
    reader.start()
    time.sleep(1.0)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cbench-{uuid.uuid4().hex[:6]}")
    pub.connect("127.0.0.1", broker_port)
    pub.loop_start()
    n = int(rate * seconds)
    published: dict[str, tuple[str, float]] = {}  # msg_id -> (device, ms)
    t_start = time.perf_counter()
    for i, (dev, lon, lat) in enumerate(cams[:n]):
        msg = uuid.uuid4().hex
        payload = {"msg_id": msg, "ts": time.time(), "kind": "intrusion", "severity": 2}
        payload.update(lon=lon, lat=lat)
        published[msg] = (dev, time.time() * 1000)
        pub.publish(f"gw/v1/{dev}/alarm", json.dumps(payload), qos=1)
        lag = t_start + (i + 1) / rate - time.perf_counter()
        if lag > 0:
            time.sleep(lag)
    sent_s = time.perf_counter() - t_start
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(sse_seen) < len(published):
        time.sleep(0.2)
    time.sleep(2)
    seen_ids = page.evaluate("window.__c.seen")
    # alarm id -> msg id through the API (the DOM knows alarm ids)
    headers = {"Authorization": f"Bearer {token}"}
    by_msg = {}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        for offset in range(0, n + 1000, 1000):
            got = c.get(
                "/api/v1/alarms", params={"state": "open", "limit": 1000, "offset": offset}
            ).json()
            for a in got["items"]:
                by_msg[a["msg_id"]] = str(a["id"])
            if got.get("next_offset") is None:
                break
    stop.set()
    pub.loop_stop()
    pub.disconnect()
    context.close()
    dom = [seen_ids[by_msg[m]] - t for m, (_d, t) in published.items() if by_msg.get(m) in seen_ids]
    bus = [sse_seen[m] - t for m, (_d, t) in published.items() if m in sse_seen]
    return {
        "published": len(published),
        "rate": len(published) / max(sent_s, 1e-9),
        "dom_seen": len(dom),
        "dom_p50_ms": pct(dom, 0.5),
        "dom_p95_ms": pct(dom, 0.95),
        "sse_seen": len(bus),
        "sse_p50_ms": pct(bus, 0.5),
        "sse_p95_ms": pct(bus, 0.95),
    }


def _cpu_ticks(pid: int) -> int:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _ffmpeg_for(url: str) -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"ffmpeg") and url.encode() in cmd and b"hls" in cmd:
            return int(entry)
    return None


def live_view(browser, base, token, engine, rtsp: str, camera: str, repeats: int) -> dict:
    from sqlalchemy import text

    url = f"{rtsp}/cam1"
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE devices SET stream_url = :u WHERE id = :d"), {"u": url, "d": camera}
        )
    # baseline: FFmpeg alone (the hub's input options), RTSP open to the first decoded frame
    from api.live import INPUT_OPTIONS

    floor = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", *INPUT_OPTIONS, "-i", url,
             "-frames:v", "1", "-f", "null", "-"],
            check=True, timeout=30,
        )  # fmt: skip
        floor.append((time.perf_counter() - t) * 1000)
    context, page = open_console(browser, base, token, 0)
    ttff, ready, cpu = [], [], None
    for i in range(repeats):
        page.evaluate("id => gw.live.openCamera(id, null)", camera)
        start = page.locator("#gw-cam-panel .gw-cp-live .gw-live-start")
        start.wait_for(timeout=15000)
        t = time.perf_counter()
        start.click()
        try:
            page.locator("#gw-cam-panel .gw-cp-live[data-state=playing]").wait_for(timeout=30000)
        except Exception:
            note = page.inner_text("#gw-cam-panel .gw-cp-live")
            raise RuntimeError(f"live view did not play (start {i + 1}): {note!r}") from None
        wall = (time.perf_counter() - t) * 1000
        ttff.append(
            float(page.get_attribute("#gw-cam-panel .gw-cp-live", "data-first-frame-ms") or wall)
        )
        ready.append(float(page.get_attribute("#gw-cam-panel .gw-cp-live", "data-ready-ms") or 0))
        if i == repeats - 1:
            pid = _ffmpeg_for(url)
            if pid:
                hz = os.sysconf("SC_CLK_TCK")
                a, t0 = _cpu_ticks(pid), time.perf_counter()
                time.sleep(15)
                b, t1 = _cpu_ticks(pid), time.perf_counter()
                playing = page.evaluate(
                    "() => document.querySelector('.gw-live-video').currentTime"
                )
                cpu = {"core_share": (b - a) / hz / (t1 - t0), "video_s": playing}
        page.keyboard.press("Escape")  # the viewer leaves: FFmpeg stops
        time.sleep(1.0)
    context.close()
    return {
        "ttff_p50_ms": pct(ttff, 0.5),
        "ttff_max_ms": max(ttff),
        "ready_p50_ms": pct(ready, 0.5),
        "floor_p50_ms": pct(floor, 0.5),
        "floor_max_ms": max(floor),
        "repeats": repeats,
        "cpu": cpu,
    }


def main(args) -> int:
    from gridwatch import rtsp_source
    from gridwatch.db import get_engine
    from gridwatch.services import services_up
    from gridwatch.settings import get_settings
    from ingest.broker_acl import DynsecAccounts

    OUT.mkdir(parents=True, exist_ok=True)
    settings = get_settings()
    services_up(settings, DynsecAccounts(settings))
    db_url = settings.db_url(DB_NAME)
    summary = prepare_data(db_url, 1, 1)
    engine = get_engine(url=db_url)
    stack = start_stack(db_url, "console_")
    broker, base = stack.broker, stack.base
    rtsp_port = free_port()
    rtsp = rtsp_source.start(
        rtsp_port, OUT / "console_rtsp", mounts=1, loops=4, log=OUT / "console_rtsp.log"
    )
    r: dict = {"devices": summary.get("devices")}
    try:
        token = stack.operator_token()
        from sqlalchemy import text

        with engine.connect() as conn:
            cams = [
                (row[0], row[1], row[2])
                for row in conn.execute(
                    text(
                        "SELECT id, ST_X(position), ST_Y(position) FROM devices WHERE fov IS NOT NULL "
                        "AND retired_at IS NULL ORDER BY md5(id) LIMIT 2000"
                    )
                ).all()
            ]
        from playwright.sync_api import sync_playwright

        from bench.map_bench import CHROMIUM_ARGS

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            phases = args.phases.split(",")
            if "queue" in phases:
                say(f"queue with {args.open} open alarms")
                seed_open_alarms(engine, args.open)
                r["queue"] = queue_render(browser, base, token, args.open, 3)
                say(f"queue: {r['queue']}")
            seed_open_alarms(engine, 0)  # close them: the burst goes into an empty queue
            if "burst" in phases:
                say(f"burst of {args.burst} alarms/s for {args.burst_s} s")
                r["burst"] = burst_latency(
                    browser, base, token, broker.port, cams, args.burst, args.burst_s
                )
                say(f"burst: {r['burst']}")
            if "live" in phases:
                say("live view")
                rtsp_url = f"rtsp://127.0.0.1:{rtsp_port}"
                r["live"] = live_view(
                    browser, base, token, engine, rtsp_url, cams[-1][0], args.live
                )
            browser.close()
    finally:
        stack.stop()
        rtsp_source.stop(rtsp)
    report(r, args)
    (OUT / "map_console.json").write_text(json.dumps(r, indent=2, default=str))
    return 0


def report(r: dict, args) -> None:
    print()
    print(f"map_bench --console: {r['devices']} devices; {args.open} open alarms")
    q, b, lv = r.get("queue"), r.get("burst"), r.get("live")
    if q:
        print(
            f"  queue first render (navigation -> counts + first rows): {q['first_render_ms']:.0f} ms, "
            f"{q['dom_rows']} rows in the DOM"
        )
        print(
            f"  queue reload in place: p50 {q['reload_p50_ms']:.0f} ms; baseline naive list of all "
            f"{q['naive_rows']} rows: p50 {q['naive_p50_ms']:.0f} ms (fetch {q['naive_fetch_ms']:.0f} ms)"
            f" -> x{q['naive_p50_ms'] / max(1e-9, q['reload_p50_ms']):.1f}"
        )
    if b:
        print(
            f"  burst {b['published']} alarms at {b['rate']:.0f}/s: DOM {b['dom_seen']} seen, p50 "
            f"{b['dom_p50_ms']:.0f} ms, p95 {b['dom_p95_ms']:.0f} ms; baseline SSE client "
            f"{b['sse_seen']} seen, p50 {b['sse_p50_ms']:.0f} ms, p95 {b['sse_p95_ms']:.0f} ms"
        )
    if lv:
        print(
            f"  live view time to first frame ({lv['repeats']} cold starts): p50 {lv['ttff_p50_ms']:.0f} ms,"
            f" max {lv['ttff_max_ms']:.0f} ms (the hub answered, first segment ready: p50 "
            f"{lv.get('ready_p50_ms', 0):.0f} ms); baseline FFmpeg alone RTSP -> first frame: p50 "
            f"{lv['floor_p50_ms']:.0f} ms, max {lv['floor_max_ms']:.0f} ms"
        )
        cpu = lv["cpu"] or {}
        if cpu:
            print(
                f"  CPU of one live camera's FFmpeg (remux): {100 * cpu['core_share']:.1f}% of a core "
                f"(the page played {cpu['video_s']:.1f} s of video)"
            )
