"""Request counters and latency sums kept in the process, exposed in Prometheus text format."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Connection, Select, func, literal, select

from gridwatch import schema


class Metrics:
    """Counts requests by route and status, and sums their durations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.seconds[(method, route)] += seconds

    def lines(self) -> list[str]:
        """Prometheus exposition lines for the request counters."""
        out = [
            "# HELP gridwatch_http_requests_total HTTP requests by method, route and status.",
            "# TYPE gridwatch_http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(
                    f'gridwatch_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}'
                )
            out += [
                "# HELP gridwatch_http_request_seconds_sum Time spent answering, by route.",
                "# TYPE gridwatch_http_request_seconds_sum counter",
            ]
            for (method, route), s in sorted(self.seconds.items()):
                out.append(
                    f'gridwatch_http_request_seconds_sum{{method="{method}",route="{route}"}} {s:.6f}'
                )
        out += [
            "# HELP gridwatch_api_uptime_seconds Seconds since the API started.",
            "# TYPE gridwatch_api_uptime_seconds gauge",
            f"gridwatch_api_uptime_seconds {time.time() - self.started:.1f}",
        ]
        return out


class _MetricsMiddleware:
    """Pure ASGI middleware (safe with streaming answers such as the SSE stream)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if (
                template.startswith("/")
                and not template.startswith("/api/")
                and scope["path"].startswith("/api/v1/")
            ):
                template = (
                    "/api/v1" + template
                )  # routes of included routers carry their own path only
            self.metrics.observe(
                scope.get("method", "GET"), template, status["code"], time.perf_counter() - start
            )


def install_metrics(app: FastAPI) -> None:
    """Count every request under its route template (not its raw path: bounded label values)."""
    app.add_middleware(_MetricsMiddleware, metrics=app.state.metrics)


def _gauges() -> tuple[tuple[str, str, str, Select[Any]], ...]:
    """(name, help, label, query of (label value, count)) of each gauge read from the database."""
    d, a = schema.devices, schema.alarms
    return (
        (
            "gridwatch_devices",
            "Registered devices by status.",
            "status",
            select(d.c.status, func.count()).where(d.c.retired_at.is_(None)).group_by(d.c.status),
        ),
        (
            "gridwatch_alarms",
            "Alarms by state.",
            "state",
            select(a.c.state, func.count()).group_by(a.c.state),
        ),
        (
            "gridwatch_pending_devices",
            "Unknown device ids heard on the broker.",
            "set",
            select(literal("all"), func.count()).select_from(schema.pending_devices),
        ),
        (
            "gridwatch_dead_letters",
            "Messages that could not be parsed or validated.",
            "set",
            select(literal("all"), func.count()).select_from(schema.dead_letters),
        ),
    )


def database_gauges(conn: Connection) -> list[str]:
    """Devices by status, alarms by state, pending devices and dead letters, as Prometheus lines."""
    lines: list[str] = []
    for name, help_text, label, stmt in _gauges():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for key, count in conn.execute(stmt):
            lines.append(f'{name}{{{label}="{key}"}} {count}')
    return lines
