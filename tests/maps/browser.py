"""Driving Debian's Chromium with Playwright: one shared browser, pages limited to localhost."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.support import wait_for

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


_PLAYWRIGHT: dict = {}


def shared_browser():
    """One Playwright and one Debian Chromium (never a downloaded browser) per test process.

    Playwright's sync API allows one instance per thread, so every test file that drives the
    browser (tests/maps and tests/test_first_slice.py) shares this one; stopped at exit.
    """
    if "browser" not in _PLAYWRIGHT:
        import atexit

        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        _PLAYWRIGHT["pw"] = pw
        _PLAYWRIGHT["browser"] = pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )

        def stop() -> None:
            _PLAYWRIGHT["browser"].close()
            pw.stop()

        atexit.register(stop)
    return _PLAYWRIGHT["browser"]


class Network:
    """Everything the page asked for: requests off localhost are aborted and counted as failures."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.failed: list[str] = []
        self.responses: list[tuple[int, str]] = []

    def problems(self) -> list[str]:
        # A camera with no picture yet answers its snapshot with 404 by design (the page says so).
        bad = [
            f"{status} {url}"
            for status, url in self.responses
            if status >= 400 and not (status == 404 and url.split("?")[0].endswith("/snapshot"))
        ]
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
    # the password check runs at nice 10 in a one-thread pool (a sign-in storm must not starve
    # reads), so on a busy machine it may take longer than Playwright's default 30 s
    page.wait_for_selector("#gw-login", state="hidden", timeout=90_000)


def add_session(context, base: str, token: str) -> None:
    """Sign a browser context in with an existing token, as POST /api/v1/auth/session would:
    the HttpOnly session cookie and the CSRF cookie that goes with it."""
    from api.auth import csrf_token
    from gridwatch.secrets import generated_key
    from gridwatch.settings import get_settings

    csrf = csrf_token(generated_key("csrf_key", get_settings()), token)
    context.add_cookies(
        [
            {
                "name": "gw_session",
                "value": token,
                "url": base,
                "httpOnly": True,
                "sameSite": "Strict",
            },
            {"name": "gw_csrf", "value": csrf, "url": base, "sameSite": "Strict"},
        ]
    )


def newest_first(page) -> None:
    """List the alarms newest first (a reset load of the queue) and wait until that list has
    landed: a later generation, drawn in newest order. (The generation alone is not enough: the
    page's first load, still in flight when it was read, landed in between and the test went on
    while the newest-first page was still coming.)"""
    gen = page.get_attribute("#gw-alarms", "data-generation")
    page.select_option("#gw-f-order", "newest")

    def landed() -> bool:
        now = page.get_attribute("#gw-alarms", "data-generation")
        return now != gen and page.get_attribute("#gw-alarms", "data-order") == "newest"

    assert wait_for(landed, 20)
