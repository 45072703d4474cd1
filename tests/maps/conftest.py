"""Browser-test fixtures: the real API and ingest worker as subprocesses, Debian's Chromium via Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.fixtures import PASSWORDS, load_places
from tests.api.stack import Stack
from tests.maps.browser import open_page, shared_browser, sign_in  # noqa: F401 - used by the tests


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
    """Debian's Chromium, shared by every browser test of this run."""
    return shared_browser()
