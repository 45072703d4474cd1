"""Map at 100,000 cameras: first-load bytes, first render in Chromium, tile p95 at three zooms, alarm
publish-to-DOM p95 under ingest load; baseline in the same run: a folium page with one marker per camera.

Run:  .venv/bin/python -m bench.map_bench [--cities 2 --counties 5] [--alarms 30] [--load 3000]
      .venv/bin/python -m bench.map_bench --console   (the operator's console: bench/map_console.py)

It uses the project-local PostGIS (a database of its own, gridwatch_mapbench, generated once and
reused), a private Mosquitto on a free port (so no one else's broker or fleet is touched), and runs
`gridwatch serve` and `gridwatch ingest` as subprocesses, like production.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.maps.browser import CHROMIUM_ARGS
from tests.support import stop_child

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DB_NAME = "gridwatch_mapbench"
SEED = 11


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def say(msg: str) -> None:
    print(f"[map_bench] {msg}", flush=True)


# ---------------------------------------------------------------------------- infrastructure


class Broker:
    """A private Mosquitto (anonymous, in memory) on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gw-mapbench-mqtt-"))
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_inflight_messages 1000\nmax_queued_messages 1000000\nlog_type error\n"
        )
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the private mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Child:
    def __init__(self, name: str, argv: list[str], env: dict) -> None:
        self.log = OUT / f"map_bench_{name}.log"
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        stop_child(self.proc)


@dataclass
class BenchStack:
    """The bench's private broker, an ingest worker and the API on the bench database."""

    broker: Broker
    children: list[Child]
    base: str
    api_log: Path

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the API answers its health check; raises naming its log when it does not."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not come up; see {self.api_log}")
            time.sleep(0.3)

    def operator_token(self) -> str:
        """A token of the bench's operator (made by prepare_data)."""
        return httpx.post(
            f"{self.base}/api/v1/auth/token",
            json={"username": "bench-operator", "password": "bench-operator-1"},
        ).json()["access_token"]

    def stop(self) -> None:
        for c in self.children:
            c.stop()
        self.broker.stop()


def start_stack(db_url: str, tag: str) -> BenchStack:
    """Start the private broker, an ingest worker and the API (logs OUT/map_bench_{tag}*.log)
    on `db_url`, and wait until the API answers; all stopped again if it does not."""
    broker = Broker()
    api_port = free_port()
    env = dict(os.environ)
    env.update(
        GRIDWATCH_DATABASE_URL=db_url,
        GRIDWATCH_MQTT_URL=f"mqtt://bench:bench@127.0.0.1:{broker.port}",
        GRIDWATCH_INGEST_SHARE_GROUP="",
        GRIDWATCH_INGEST_CLIENT_ID=f"mapbench-{tag}{uuid.uuid4().hex[:6]}",
        GRIDWATCH_LOG_LEVEL="WARNING",
    )
    serve = ["serve", "--port", str(api_port), "--log-level", "warning"]
    api = Child(f"{tag}api", [sys.executable, "-m", "gridwatch", *serve], env)
    children = [Child(f"{tag}ingest", [sys.executable, "-m", "gridwatch", "ingest"], env), api]
    stack = BenchStack(broker, children, f"http://127.0.0.1:{api_port}", api.log)
    try:
        stack.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack


def prepare_data(db_url: str, cities: int, counties: int) -> dict:
    """Generate the synthetic region once (reused on later runs) and the bench users."""
    from api.users import ensure_user
    from gridwatch.db import get_engine, migrate
    from simulators.region import generate_into, scale_with

    migrate(db_url)
    engine = get_engine(url=db_url)
    from dataclasses import replace

    scale = replace(
        scale_with("province", cities=cities, counties_per_city=(counties, counties)),
        name=f"mapbench-{cities}x{counties}",
    )
    t = time.perf_counter()
    with engine.begin() as conn:
        summary = generate_into(conn, SEED, scale)
    say(
        f"region ready in {time.perf_counter() - t:.1f} s: {summary.get('devices')} devices (created: {summary.get('created')})"
    )
    with engine.begin() as conn:
        ensure_user(conn, "bench-operator", "bench-operator-1", "operator")
    return summary


# ---------------------------------------------------------------------------- measurements


def tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def measure_tiles(
    base: str, token: str, points: list[tuple[float, float]], zooms: tuple[int, ...]
) -> dict:
    """Cold then warm latency of the device tiles that hold cameras, per zoom."""
    out = {}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for z in zooms:
            tiles = sorted({tile_xy(lon, lat, z) for lon, lat in points})
            random.Random(z).shuffle(tiles)
            tiles = tiles[:120]
            cold, warm, sizes = [], [], []
            for x, y in tiles:
                t = time.perf_counter()
                r = client.get(f"/tiles/devices/{z}/{x}/{y}.pbf")
                cold.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
                sizes.append(len(r.content))
            for x, y in tiles:
                t = time.perf_counter()
                client.get(f"/tiles/devices/{z}/{x}/{y}.pbf").raise_for_status()
                warm.append((time.perf_counter() - t) * 1000)
            out[z] = {
                "tiles": len(tiles),
                "cold_p50_ms": pct(cold, 0.5),
                "cold_p95_ms": pct(cold, 0.95),
                "warm_p95_ms": pct(warm, 0.95),
                "mean_kb": statistics.mean(sizes) / 1024,
            }
    return out


FIRST_PATH_OBSERVER = """
(() => {
  window.__gw = { firstPath: null, alarmSeen: {} };
  const obs = new MutationObserver(() => {
    if (window.__gw.firstPath === null && document.querySelector('.leaflet-tile-container svg path')) {
      window.__gw.firstPath = performance.now();
    }
    document.querySelectorAll('.gw-alarm[data-alarm-id]').forEach(li => {
      const text = li.textContent;
      const m = text.match(/[0-9]{20}/);
      if (m && !(m[0] in window.__gw.alarmSeen)) window.__gw.alarmSeen[m[0]] = Date.now();
    });
  });
  document.addEventListener('DOMContentLoaded', () => obs.observe(document.body, { childList: true, subtree: true }));
})();
"""


def first_load(browser, url: str, token: str, settle_s: float = 2.0) -> dict:
    """Bytes over the wire and time to first drawn device, for a cold page load of `url`."""
    from urllib.parse import urlsplit

    from tests.maps.browser import add_session

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    parts = urlsplit(url)
    add_session(context, f"{parts.scheme}://{parts.netloc}", token)
    context.add_init_script("localStorage.setItem('gw.lang', 'en');")
    context.add_init_script(FIRST_PATH_OBSERVER)
    page = context.new_page()
    responses = []
    page.on("requestfinished", lambda req: responses.append(req))
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_function("() => window.__gw && window.__gw.firstPath !== null", timeout=120_000)
    first = page.evaluate("window.__gw.firstPath")
    page.wait_for_load_state("networkidle")
    time.sleep(settle_s)
    wall = time.perf_counter() - t
    total = 0
    for req in responses:
        try:
            sizes = req.sizes()
            total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        except Exception:
            pass
    paths = page.locator(".leaflet-tile-container svg path").count()
    return {
        "page": page,
        "context": context,
        "bytes": total,
        "requests": len(responses),
        "first_render_ms": first,
        "wall_s": wall,
        "svg_paths": paths,
    }


def baseline(browser, db_url: str, api_base: str) -> dict:
    """The naive page: folium with one Marker per camera (assets from the same local server)."""
    import folium
    from sqlalchemy import text

    from gridwatch.db import get_engine

    with get_engine(url=db_url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ST_Y(position), ST_X(position) FROM devices WHERE position IS NOT NULL AND retired_at IS NULL"
            )
        ).all()
    t = time.perf_counter()
    m = folium.Map(location=[rows[0][0], rows[0][1]], zoom_start=8, tiles=None)
    m.default_js = [("leaflet", f"{api_base}/assets/vendor/leaflet/dist/leaflet.js")]
    m.default_css = [("leaflet_css", f"{api_base}/assets/vendor/leaflet/dist/leaflet.css")]
    icon_url = f"{api_base}/assets/vendor/leaflet/dist/images/marker-icon.png"
    for lat, lon in rows:
        folium.Marker([lat, lon], icon=folium.CustomIcon(icon_url, icon_size=(12, 20))).add_to(m)
    html = m.get_root().render()
    build_s = time.perf_counter() - t
    path = OUT / "map_bench_baseline.html"
    path.write_text(html)
    port = free_port()
    handler = lambda *a, **k: SimpleHTTPRequestHandler(*a, directory=str(OUT), **k)  # noqa: E731
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(
        "window.__gw = {first: null}; new MutationObserver(() => { if (window.__gw.first === null && document.querySelector('.leaflet-marker-icon')) window.__gw.first = performance.now(); })"
        ".observe(document, {childList: true, subtree: true});"
    )
    page = context.new_page()
    responses = []
    page.on("requestfinished", lambda req: responses.append(req))
    result = {"markers": len(rows), "html_mb": len(html.encode()) / 1e6, "python_build_s": build_s}
    try:
        page.goto(f"http://127.0.0.1:{port}/{path.name}", timeout=300_000)
        page.wait_for_function("() => window.__gw.first !== null", timeout=300_000)
        result["first_render_ms"] = page.evaluate("window.__gw.first")
        page.wait_for_load_state("load", timeout=300_000)
        total = 0
        for req in responses:
            try:
                s = req.sizes()
                total += s["responseBodySize"] + s["responseHeadersSize"]
            except Exception:
                pass
        result["bytes"] = total
        result["dom_markers"] = page.locator(".leaflet-marker-icon").count()
    except Exception as exc:  # a page this big may not finish: report that instead of a number
        result["error"] = f"{exc.__class__.__name__}: {str(exc)[:200]}"
    finally:
        context.close()
        server.shutdown()
    return result


def alarm_latency(
    page,
    broker_port: int,
    ids_with_pos: list[tuple[str, float, float]],
    n_alarms: int,
    load_rate: int,
) -> dict:
    """Publish alarms while heartbeats flood in; latency = alarm item in the DOM - publish time."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    stop = threading.Event()
    sent = {"heartbeats": 0}

    def flood() -> None:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-load-{uuid.uuid4().hex[:6]}")
        c.connect("127.0.0.1", broker_port)
        c.loop_start()
        rnd = random.Random(5)
        batch = max(1, load_rate // 50)
        while not stop.is_set():
            t = time.perf_counter()
            now = time.time()
            for _ in range(batch):
                dev = ids_with_pos[rnd.randrange(len(ids_with_pos))][0]
                c.publish(f"gw/v1/{dev}/heartbeat", json.dumps({"ts": now}), qos=0)
                sent["heartbeats"] += 1
            time.sleep(max(0.0, 0.02 - (time.perf_counter() - t)))
        c.loop_stop()
        c.disconnect()

    loader = threading.Thread(target=flood, daemon=True)
    loader.start()
    time.sleep(3)  # let the load settle
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-alarm-{uuid.uuid4().hex[:6]}")
    pub.connect("127.0.0.1", broker_port)
    pub.loop_start()
    rnd = random.Random(time.time_ns())
    published: dict[str, float] = {}
    for dev, lon, lat in rnd.sample(ids_with_pos, n_alarms):
        payload = json.dumps(
            {
                "msg_id": uuid.uuid4().hex,
                "ts": time.time(),
                "kind": "intrusion",
                "severity": 2,
                "lon": lon,
                "lat": lat,
            }
        )
        published[dev] = time.time() * 1000
        pub.publish(f"gw/v1/{dev}/alarm", payload, qos=1).wait_for_publish(5)
        time.sleep(0.4)
    deadline = time.monotonic() + 15
    seen: dict = {}
    while time.monotonic() < deadline:
        seen = page.evaluate("window.__gw.alarmSeen")
        if all(d in seen for d in published):
            break
        time.sleep(0.2)
    stop.set()
    loader.join(10)
    pub.loop_stop()
    pub.disconnect()
    lat_ms = [seen[d] - t for d, t in published.items() if d in seen]
    elapsed = max(1e-9, (max(published.values()) - min(published.values())) / 1000 + 3)
    return {
        "alarms": len(published),
        "seen": len(lat_ms),
        "p50_ms": pct(lat_ms, 0.5),
        "p95_ms": pct(lat_ms, 0.95),
        "max_ms": max(lat_ms) if lat_ms else float("nan"),
        "heartbeats_per_s": sent["heartbeats"] / elapsed,
    }


# ---------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cities", type=int, default=2)
    ap.add_argument(
        "--counties", type=int, default=5, help="counties per city (2 x 5 ~ 100,000 cameras)"
    )
    ap.add_argument("--alarms", type=int, default=30)
    ap.add_argument(
        "--load", type=int, default=3000, help="heartbeats per second during the alarm test"
    )
    ap.add_argument("--no-baseline", action="store_true")
    # the operator's console (bench/map_console.py): queue, alarm burst, live view
    ap.add_argument("--console", action="store_true", help="measure the operator's console only")
    ap.add_argument("--open", type=int, default=5000, help="--console: open alarms in the queue")
    ap.add_argument("--burst", type=int, default=100, help="--console: alarms per second")
    ap.add_argument("--burst-s", type=float, default=5.0, help="--console: burst length")
    ap.add_argument("--live", type=int, default=5, help="--console: live-view cold starts")
    ap.add_argument("--phases", default="queue,burst,live", help="--console: which to measure")
    args = ap.parse_args()
    if args.console:
        from bench.map_console import main as console_main

        return console_main(args)
    OUT.mkdir(parents=True, exist_ok=True)

    from gridwatch.services import services_up
    from gridwatch.settings import get_settings
    from ingest.broker_acl import DynsecAccounts

    settings = get_settings()
    # the project-local PostGIS (its own database below)
    services_up(settings, DynsecAccounts(settings))
    db_url = settings.db_url(DB_NAME)
    summary = prepare_data(db_url, args.cities, args.counties)

    stack = start_stack(db_url, "")
    broker, base = stack.broker, stack.base
    results: dict = {"devices": summary.get("devices")}
    try:
        token = stack.operator_token()

        from sqlalchemy import text

        from gridwatch.db import get_engine

        with get_engine(url=db_url).connect() as conn:
            pts = conn.execute(
                text(
                    "SELECT id, ST_X(position), ST_Y(position) FROM devices WHERE retired_at IS NULL AND fov IS NOT NULL AND position IS NOT NULL"
                )
            ).all()
        cams = [(r[0], r[1], r[2]) for r in pts]
        with get_engine(url=db_url).begin() as conn:  # earlier runs' alarms must not be on the list
            conn.execute(
                text(
                    "UPDATE alarms SET state = 'resolved', closed_by = 'map_bench', closed_at = now() WHERE state IN ('new', 'acknowledged', 'dispatched')"
                )
            )
        results["cameras"] = len(cams)
        say(f"{len(cams)} cameras; measuring tiles")
        results["tiles"] = measure_tiles(base, token, [(c[1], c[2]) for c in cams], (8, 12, 16))

        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            say("first load of /map")
            load = first_load(browser, f"{base}/map", token)
            results["map"] = {k: v for k, v in load.items() if k not in ("page", "context")}
            say(f"alarms under load ({args.load}/s heartbeats)")
            results["alarms"] = alarm_latency(
                load["page"], broker.port, cams, args.alarms, args.load
            )
            load["context"].close()
            if not args.no_baseline:
                say("baseline: folium, one marker per camera")
                results["baseline"] = baseline(browser, db_url, base)
            browser.close()
    finally:
        stack.stop()

    report(results, args)
    (OUT / "map_bench.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


def report(r: dict, args) -> None:
    m, a = r["map"], r["alarms"]
    print()
    print(
        f"map_bench: {r['cameras']:,} cameras (seed {SEED}, {args.cities} cities x {args.counties} counties)"
    )
    print(
        f"  first load of /map:   {m['bytes'] / 1e6:.2f} MB in {m['requests']} requests; first devices drawn at {m['first_render_ms']:.0f} ms; {m['svg_paths']} SVG paths"
    )
    for z, t in r["tiles"].items():
        print(
            f"  tiles z{z:<2}: {t['tiles']:3d} tiles, cold p50 {t['cold_p50_ms']:.1f} ms, p95 {t['cold_p95_ms']:.1f} ms; cached p95 {t['warm_p95_ms']:.1f} ms; {t['mean_kb']:.1f} kB mean"
        )
    print(
        f"  alarm publish -> DOM: {a['seen']}/{a['alarms']} seen, p50 {a['p50_ms']:.0f} ms, p95 {a['p95_ms']:.0f} ms, max {a['max_ms']:.0f} ms under {a['heartbeats_per_s']:.0f} heartbeats/s"
    )
    b = r.get("baseline")
    if b:
        if "error" in b:
            print(
                f"  baseline folium, {b['markers']:,} markers: {b['html_mb']:.1f} MB HTML (built in {b['python_build_s']:.1f} s); page did not finish: {b['error']}"
            )
        else:
            print(
                f"  baseline folium, {b['markers']:,} markers: {b['bytes'] / 1e6:.2f} MB on first load ({b['html_mb']:.1f} MB HTML, built in {b['python_build_s']:.1f} s), "
                f"first marker drawn at {b['first_render_ms']:.0f} ms"
            )
            print(
                f"  ratios (baseline / gridwatch): bytes x{b['bytes'] / max(1, m['bytes']):.0f}, first render x{b['first_render_ms'] / max(1, m['first_render_ms']):.1f}"
            )


if __name__ == "__main__":
    sys.exit(main())
