"""Test fixtures: the real local PostGIS and Mosquitto, a fresh migrated database per run."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every test run gets services of its own: a PostGIS cluster and a Mosquitto in a run directory,
# on free ports, stopped and removed when the run ends. So concurrent runs (and a running demo)
# never rewrite each other's broker credentials or restart each other's servers, and a leftover
# server of an earlier run can never make a port "already in use". Set GRIDWATCH_HOME to reuse
# one set of test services across runs instead. This runs before any module reads settings.
_TEST_DB = f"gridwatch_test_{uuid.uuid4().hex[:10]}"
_RUN_DIR: Path | None = None


def _free_port() -> int:
    """A free port outside the ephemeral range: the services bind it only when the first
    integration test needs them, and an outgoing connection may draw an ephemeral one meanwhile."""
    from gridwatch.ports import free_local_port

    return free_local_port()


if "GRIDWATCH_HOME" not in os.environ and not (
    os.environ.get("GRIDWATCH_DATABASE_URL") and os.environ.get("GRIDWATCH_MQTT_URL")
):
    _RUN_DIR = ROOT / ".gridwatch" / "test-runs" / uuid.uuid4().hex[:10]
    os.environ["GRIDWATCH_HOME"] = str(_RUN_DIR)
    os.environ["GRIDWATCH_PG_PORT"] = str(_free_port())
    os.environ["GRIDWATCH_MQTT_PORT"] = str(_free_port())
if not os.environ.get("GRIDWATCH_DATABASE_URL"):
    os.environ.setdefault("GRIDWATCH_PG_PORT", "25442")
    os.environ["GRIDWATCH_DB_NAME"] = _TEST_DB
else:
    base, _, _ = os.environ["GRIDWATCH_DATABASE_URL"].rpartition("/")
    os.environ["GRIDWATCH_DATABASE_URL"] = f"{base}/{_TEST_DB}"
if not os.environ.get("GRIDWATCH_MQTT_URL"):
    os.environ.setdefault("GRIDWATCH_MQTT_PORT", "21893")


# Markers follow from the fixtures a test uses, so they cannot be forgotten or left stale:
# anything whose fixture closure reaches `services` (db_url, engine, mqtt_broker, stacks built on
# them) or `own_services_home` (a test starting services of its own) is `integration`; anything
# using `browser` is `browser`. `-m "not integration"` then starts no PostGIS or Mosquitto at all:
# they start lazily, when the first such fixture is set up.
# A fixture that starts services of its own (federation's `hubs`: a PostGIS and a Mosquitto per
# hub) belongs here too.
SERVICE_FIXTURES = {"services", "own_services_home", "hubs"}
BROWSER_FIXTURE = "browser"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # ./gw runs the unit tests in at least 4 processes on as few as 2 cores: one OpenCV
        # thread each (its pool otherwise starts one per core in every process, and they spin
        # against each other: ~10% more CPU for the same pictures).
        try:
            import cv2
        except ImportError:
            return
        cv2.setNumThreads(1)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A run's own home is removed with its services; a run that never started them (a unit
    run) removes it here. A run that deselected `integration` must not have started them."""
    if _RUN_DIR is None or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    started = [d for d in ("pg", "mqtt") if (_RUN_DIR / d).exists()]
    if started and "not integration" in (session.config.option.markexpr or ""):
        print(
            f"\nerror: this run deselected integration tests but started {' and '.join(started)}"
            f" in {_RUN_DIR}: a test reaches the services without a fixture in SERVICE_FIXTURES",
            file=sys.stderr,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif not started:
        shutil.rmtree(_RUN_DIR, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests `integration` / `browser` by the fixtures they (transitively) use."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if SERVICE_FIXTURES & names:
            item.add_marker(pytest.mark.integration)
        if BROWSER_FIXTURE in names:
            item.add_marker(pytest.mark.browser)


@dataclass(frozen=True)
class Broker:
    """Where the test broker listens and the hub's credentials on it."""

    host: str
    port: int
    user: str
    password: str


@pytest.fixture(scope="session")
def services() -> Iterator[None]:
    """Start (or reuse) the local PostGIS and Mosquitto for this test run."""
    from gridwatch.services import services_down, services_up
    from gridwatch.settings import get_settings
    from ingest.broker_acl import DynsecAccounts

    services_up(accounts=DynsecAccounts(get_settings()))
    yield
    if _RUN_DIR is not None:
        services_down()
        shutil.rmtree(_RUN_DIR, ignore_errors=True)


@pytest.fixture()
def own_services_home(tmp_path: Path) -> Iterator[Path]:
    """A GRIDWATCH_HOME for a test that starts a PostGIS or Mosquitto of its own there."""
    yield tmp_path
    from gridwatch.settings import Settings
    from ingest.broker_acl import local_broker

    broker = local_broker(Settings(home=tmp_path, pg_port=1))
    if broker.pidfile.exists():  # never leave a test's broker running
        broker.stop()


@pytest.fixture(scope="session")
def db_url(services: None) -> Iterator[str]:
    """URL of a fresh database, migrated to every head, dropped after the run."""
    from gridwatch.db import drop_database, migrate
    from gridwatch.settings import get_settings

    url = get_settings().db_url()
    migrate(url)
    yield url
    if not os.environ.get("GRIDWATCH_KEEP_TEST_DB"):
        from gridwatch.db import get_engine

        get_engine(url=url).dispose()
        drop_database(url)


@pytest.fixture(scope="session")
def engine(db_url: str):
    """The SQLAlchemy engine on the test database."""
    from gridwatch.db import get_engine

    return get_engine(url=db_url)


def observer_account(settings=None) -> tuple[str, str]:
    """A broker account for tests that stand in for devices and watchers: it may publish and
    subscribe under gw/v1/ (shared too). Created through the dynamic-security admin account on
    the project-local broker; with an external broker, the URL's account."""
    import secrets

    from gridwatch.settings import get_settings
    from hardware.contract.acl import DENY_REST
    from hardware.contract.acl import acl as _acl
    from ingest.broker_acl import DynsecAdmin

    settings = settings or get_settings()
    if not settings.local_mqtt:
        return settings.hub_credentials()
    user, password = "gridwatch-test", secrets.token_urlsafe(16)
    acls = [
        _acl("publishClientSend", "gw/v1/#"),
        _acl("subscribePattern", "gw/v1/#"),
        _acl("subscribePattern", "$share/+/gw/v1/#"),
        _acl("publishClientReceive", "gw/v1/#"),
        *DENY_REST,
    ]
    with DynsecAdmin(settings) as admin:
        admin.run(
            [{"command": "createRole", "rolename": user, "acls": acls}],
            ok_errors=("Role already exists",),
        )
        admin.put_client(user, password, user)
    return user, password


@pytest.fixture(scope="session")
def mqtt_broker(services: None) -> Broker:
    """The real Mosquitto the project started, with a test account that may publish and
    subscribe under gw/v1/ (the hub's own accounts are least-privilege roles)."""
    from gridwatch.settings import get_settings

    settings = get_settings()
    host, port = settings.mqtt_endpoint()
    user, password = observer_account(settings)
    return Broker(host, port, user, password)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright, shared by every browser test of this run."""
    from tests.maps.browser import shared_browser

    return shared_browser()


@pytest.fixture(scope="session")
def rtsp_source(tmp_path_factory) -> Iterator[str]:
    """A real RTSP server (GStreamer's, tools/rtsp-demo-source) serving real footage; yields
    rtsp://127.0.0.1:PORT (mounts /cam1 .. /cam4)."""
    from gridwatch import rtsp_source as src
    from gridwatch.ports import free_local_port

    lacking = src.missing()
    if lacking:
        pytest.fail(f"the live-view tests need {lacking}: run ./gw test (it installs them)")
    port = free_local_port()
    base = tmp_path_factory.mktemp("rtsp")
    proc = src.start(port, base / "cache", mounts=4, loops=6, log=base / "rtsp.log")
    try:
        yield f"rtsp://127.0.0.1:{port}"
    finally:
        src.stop(proc)
