"""Browser-test fixtures: the real API and ingest worker as subprocesses, Debian's Chromium via Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.api.fixtures import PASSWORDS, load_places
from tests.api.stack import Stack

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def places(engine) -> dict:
    return load_places(engine)


@pytest.fixture(scope="session")
def users(engine, places) -> dict:
    from api.users import ensure_user

    with engine.begin() as conn:
        for name, (role, password, regions) in PASSWORDS.items():
            ensure_user(conn, name, password, role, regions=regions)
    return PASSWORDS


@pytest.fixture(scope="session")
def stack(db_url, mqtt_broker, users) -> Iterator[Stack]:
    """`gridwatch serve` and `gridwatch ingest` on the test database and broker."""
    s = Stack()
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


class Network:
    """Everything the page asked for: requests off localhost are aborted and counted as failures."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.failed: list[str] = []
        self.responses: list[tuple[int, str]] = []

    def problems(self) -> list[str]:
        bad = [f"{status} {url}" for status, url in self.responses if status >= 400]
        return (
            [f"blocked (not localhost): {u}" for u in self.blocked]
            + [f"failed: {u}" for u in self.failed]
            + bad
        )


def open_page(browser, viewport=None, mobile: bool = False):
    """A fresh context and page with the network limited to localhost; returns (context, page, network)."""
    net = Network()
    context = browser.new_context(
        viewport=viewport or {"width": 1280, "height": 800},
        is_mobile=mobile,
        has_touch=mobile,
        locale="en-US",
    )

    def guard(route):
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            net.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on(
        "requestfailed",
        lambda r: (
            net.failed.append(f"{r.url} ({r.failure})") if "/api/v1/stream" not in r.url else None
        ),
    )
    page.on("response", lambda r: net.responses.append((r.status, r.url)))
    page.on("pageerror", lambda e: net.failed.append(f"page error: {e}"))
    return context, page, net


def sign_in(page, base: str, path: str, username: str, password: str) -> None:
    page.goto(f"{base}{path}")
    page.fill("#gw-login-user", username)
    page.fill("#gw-login-pass", password)
    page.click("#gw-login-submit")
    page.wait_for_selector("#gw-login", state="hidden")
