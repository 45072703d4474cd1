"""Browser-test fixtures: the real API and ingest worker as subprocesses, Debian's Chromium via Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.fixtures import places, users  # noqa: F401 - shared fixtures
from tests.api.stack import Stack, running_stack
from tests.maps.browser import open_page, sign_in  # noqa: F401 - used by the tests


@pytest.fixture(scope="package")
def stack(db_url, mqtt_broker, users) -> Iterator[Stack]:
    """`gridwatch serve` and `gridwatch ingest` on the test database and broker, for the map
    tests only: its worker (default fair-share limits, its own share group) consumes every
    device's messages, so it is stopped before other packages' tests count what their own
    workers did (a flood test saw this worker quarantine its device a second time). The
    package scope needs tests/maps/__init__.py: in a plain directory pytest keeps a
    package-scoped fixture for the whole session."""
    with running_stack() as s:
        yield s
