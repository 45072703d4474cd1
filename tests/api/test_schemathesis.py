"""Fuzz the API against its own OpenAPI with schemathesis, in-process on the test database: no 5xx.

Every operation gets a bounded number of generated requests, valid and invalid, sent with an
admin's token so they reach the handlers; operations on one device or alarm are also fuzzed on a
real device and alarm. Answers must be no server error and must match the documented status
codes, content types and schemas.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from ingest.alarms import AlarmIn, store_alarms
from tests.api.fixtures import device_id

MAX_EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The stream never ends by design (an in-process call would wait forever); it has its own tests.
SKIP = {"/api/v1/stream"}
# Changing the admin's own password: every wrong current password counts toward the admin's
# sign-in lockout, which the other tests sign in as; it has its own tests (tests/security).
SKIP |= {"/api/v1/auth/password"}


@pytest.fixture
def real_ids(client, headers, engine):
    """A registered camera and an alarm of it, so fuzzing also reaches past the 404s."""
    body = {"id": device_id(), "lon": 115.39, "lat": 28.44, "heading_deg": 45, "focal_mm": 6}
    r = client.post("/api/v1/devices", headers=headers["t-installer"], json=body)
    assert r.status_code == 201, r.text
    with engine.begin() as conn:
        out = store_alarms(
            conn, [AlarmIn(body["id"], f"fuzz-{time.time_ns()}", "intrusion", 2, time.time())]
        )
    return {"device_id": body["id"], "alarm_id": out.new[0]["id"]}


def _explain(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join(_explain(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def test_no_server_errors_and_conforming_answers(app, client, headers, places, real_ids):
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    runs = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP:
            continue
        variants = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        known = {k: v for k, v in real_ids.items() if "{" + k + "}" in operation.path}
        if known:
            variants.append((GenerationMode.POSITIVE, known))
        for mode, path_parameters in variants:
            runs += 1

            @given(case=operation.as_strategy(mode, path_parameters=path_parameters))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:
                response = case.call(headers=headers["t-admin"])
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                continue  # nothing invalid to send (an operation without parameters or body)
            except Exception as exc:  # collect every operation's failure, then report them all
                label = f"{operation.method.upper()} {operation.path} [{mode.value}{' on real ids' if path_parameters else ''}]"
                failures.append(f"{label}: {_explain(exc)[:3000]}")
    assert runs >= 60
    assert not failures, "\n\n".join(failures)
