"""Fixtures for the hostile tests: the ingest fixtures (devices, workers) and device logins."""

from __future__ import annotations

from tests.ingest.conftest import (  # noqa: F401 - shared fixtures
    hub_client,
    make_device,
    pg,
    start_worker,
)
