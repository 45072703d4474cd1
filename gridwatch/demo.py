"""`gridwatch demo`: services, schema, a demo county, a simulated fleet, ingest, API and the live map."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from gridwatch.db import get_engine, migrate
from gridwatch.services import services_down, services_status, services_up
from gridwatch.settings import Settings, get_settings
from gridwatch.supervisor import Supervisor
from ingest.broker_acl import DynsecAccounts, local_broker

DEMO_REGION = "360121"  # 南昌县, Nanchang County, Jiangxi: the shared sample division list
DEMO_SEED = 28181
DEMO_ALARM_RATE_SCALE = (
    40  # a demo wants alarms every few seconds, not a real county's few per hour
)
DEMO_USERS = {  # name -> (role, password); printed at start, for a demo only
    "admin": ("admin", "admin-demo"),
    "operator": ("operator", "operator-demo"),
    "installer": ("installer", "installer-demo"),
    "auditor": ("auditor", "auditor-demo"),
}


@dataclass
class DemoOptions:
    """What a person can change about the demo."""

    speed: float = 1.0
    seed: int = DEMO_SEED
    run_for: float | None = None  # seconds; None runs until Ctrl-C
    fleet: bool = True


def load_demo_data(settings: Settings, seed: int, say: Callable[[str], None]) -> dict:
    """Generate the demo county once (a no-op when it is there) and the demo users."""
    from simulators.region import generate_region

    engine = get_engine(settings)
    summary = generate_region(engine, seed=seed, scale="county")
    say(
        "demo region ready: {regions} regions, {villages} villages, {grids} grids, "
        "{devices} cameras and checkpoints".format(**summary)
    )
    from simulators.demo_devices import ensure_demo_devices

    extras = ensure_demo_devices(engine, DEMO_REGION, seed)
    say(f"alarm sensors, patrol cars and livestock collars: {extras['devices']}")
    from simulators.gb28181_demo import ensure_demo_gb_devices

    gb = ensure_demo_gb_devices(engine, DEMO_REGION)
    say(f"GB/T 28181 devices: {gb['gb28181']} (NVRs and a camera), SIA DC-09 panel {gb['panel']}")
    from api.users import ensure_user

    with engine.begin() as conn:
        for name, (role, password) in DEMO_USERS.items():
            ensure_user(conn, name, password, role, regions=[DEMO_REGION.ljust(12, "0")])
    return summary


def wait_for_api(url: str, timeout: float = 60.0, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll the API's health endpoint until it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def run_demo(options: DemoOptions, say: Callable[[str], None]) -> int:
    """Run the whole demo until Ctrl-C (or run_for seconds); returns an exit code."""
    settings = get_settings()
    were_running = {s.name for s in services_status(settings) if s.running}
    say("starting local services (PostGIS, Mosquitto)")
    services_up(settings, DynsecAccounts(settings))
    say("migrating the database")
    migrate(settings.db_url())
    load_demo_data(settings, options.seed, say)
    if settings.local_mqtt:
        local_broker(settings).reload()  # device credentials for the generated fleet

    sup = Supervisor(settings.home / "logs")
    # The worker keeps its broker session when it stops, so nothing in flight is lost; the
    # fleet stops with it, so the session does not fill while the demo is down.
    # GRIDWATCH_DEMO=1: the demo's users have printed demo passwords, and serve/ingest accept
    # whatever GRIDWATCH_SECRET_KEY / broker passwords the environment gives (docs/security.md).
    demo_env = {"GRIDWATCH_DEMO": "1"}
    say(
        "this demo uses demo secrets (GRIDWATCH_DEMO=1: demo users with printed passwords, "
        f"keys in {settings.home / 'secrets.json'}); do not expose it beyond this machine"
    )
    sup.add("ingest", sup.gridwatch_argv("ingest"), env=demo_env)
    sup.add("api", sup.gridwatch_argv("serve"), env=demo_env)
    sup.add("vision", sup.gridwatch_argv("vision", "--region", DEMO_REGION))
    # GB/T 28181 gateway + SIA DC-09 receiver, and their simulated devices (docs/gb28181.md)
    from simulators.gb28181_demo import DEMO_SIP_PASSWORD

    sip_env = {"GRIDWATCH_SIP_PASSWORD": settings.sip_password or DEMO_SIP_PASSWORD}
    sup.add("gb28181", sup.gridwatch_argv("gb28181"), env=sip_env)
    sup.add("alarm-receiver", sup.gridwatch_argv("alarm-receiver"))
    if options.fleet:
        sup.add(
            "gb-devices", sup.gridwatch_argv("gb28181", "demo-devices", "--speed", str(options.speed)),
            env=sip_env,
        )  # fmt: skip
    # live view: a few cameras stream real footage from GStreamer's RTSP server (Debian packages)
    from gridwatch import rtsp_source

    lacking = rtsp_source.missing()
    if lacking:
        say(f"live view demo off: install {', '.join(lacking)} (./gw demo does)")
    else:
        cams = rtsp_source.ensure_demo_streams(
            get_engine(settings), DEMO_REGION, settings.rtsp_demo_port
        )
        sup.add(
            "rtsp-cameras",
            rtsp_source.argv(settings.rtsp_demo_port, settings.home / "rtsp-demo", len(cams) or 1),
        )
        say(f"live view: cameras {', '.join(cams)} stream a real clip over RTSP")
    if options.fleet:
        sup.add(
            "fleet",
            sup.gridwatch_argv(
                "simulate",
                "--from-db",
                "--region",
                DEMO_REGION,
                "--speed",
                str(options.speed),
                "--seed",
                str(options.seed),
                "--alarm-rate-scale",
                str(DEMO_ALARM_RATE_SCALE),
            ),
        )
    stop = {"now": False}

    def on_signal(_signum, _frame) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    base = f"http://{settings.api_host}:{settings.api_port}"
    for note in sup.reap_leftovers():
        say(note)
    try:
        sup.start_all()
        api = next(c for c in sup.children if c.name == "api")
        if not wait_for_api(f"{base}/api/v1/health", alive=lambda: api.proc.poll() is None):
            say(f"the API did not come up; see {api.log}")
            return 1
        say(f"live map:       {base}/map")
        say(f"installer view: {base}/install     auditor view: {base}/audit     API: {base}/docs")
        say("users: " + ", ".join(f"{n} / {p}" for n, (_r, p) in DEMO_USERS.items()))
        say(f"logs in {sup.log_dir}; Ctrl-C stops everything")
        started = time.monotonic()
        while not stop["now"]:
            for note in sup.poll():
                say(note)
            if options.run_for is not None and time.monotonic() - started >= options.run_for:
                break
            time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        say(str(exc))
        return 1
    finally:
        say("stopping the fleet, vision worker, ingest and API")
        sup.stop_all()
        if not were_running:
            say("stopping local services")
            services_down(settings)
