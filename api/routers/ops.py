"""Operations: health (database, broker, schema) and Prometheus metrics."""

from __future__ import annotations

import socket

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from api.deps import get_engine
from api.metrics import database_gauges
from gridwatch.db import schema_heads

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """Whether the API can reach its database and broker."""

    status: str
    database: str
    broker: str
    schema_heads: list[str] = []
    stream_clients: int = 0


def _broker(request: Request) -> str:
    host, port = request.app.state.settings.mqtt_endpoint()
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return "ok"
    except OSError as exc:
        return f"unreachable at {host}:{port} ({exc.strerror or exc.__class__.__name__})"


@router.get(
    "/health",
    response_model=Health,
    summary="Health",
    responses={503: {"model": Health, "description": "the database is unreachable"}},
)
def health(request: Request):
    """200 when the database answers (status 'degraded' when only the broker is down); 503 otherwise. No sign-in needed."""
    heads: list[str] = []
    try:
        with get_engine(request).connect() as conn:
            heads = schema_heads(conn)
        database = "ok"
    except Exception as exc:  # report, never raise: health must always answer
        database = f"unreachable ({exc.__class__.__name__})"
    broker = _broker(request)
    status = "ok" if database == "ok" and broker == "ok" else "degraded"
    body = Health(
        status=status if database == "ok" else "down",
        database=database,
        broker=broker,
        schema_heads=sorted(heads),
        stream_clients=request.app.state.broadcaster.client_count,
    )
    if database != "ok":
        return JSONResponse(status_code=503, content=body.model_dump())
    return body


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> PlainTextResponse:
    """Request counters, devices by status, alarms by state, stream clients (Prometheus text format)."""
    lines = request.app.state.metrics.lines()
    lines += [
        "# HELP gridwatch_stream_clients Browsers connected to the live stream.",
        "# TYPE gridwatch_stream_clients gauge",
        f"gridwatch_stream_clients {request.app.state.broadcaster.client_count}",
    ]
    try:
        with get_engine(request).connect() as conn:
            lines += database_gauges(conn)
    except Exception as exc:  # metrics stay readable when the database is down
        lines.append(f"# database unreachable: {exc.__class__.__name__}")
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
