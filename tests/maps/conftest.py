"""Browser-test fixtures: the real API and ingest worker as subprocesses, Debian's Chromium via Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.fixtures import places, users  # noqa: F401 - shared fixtures
from tests.api.stack import Stack
from tests.maps.browser import open_page, sign_in  # noqa: F401 - used by the tests


@pytest.fixture(scope="session")
def stack(db_url, mqtt_broker, users) -> Iterator[Stack]:
    """`gridwatch serve` and `gridwatch ingest` on the test database and broker."""
    s = Stack()
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()
