"""The live stream (Server-Sent Events): alarms, alarm state changes and device status, by region."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import ANY_ROLE, Principal, require
from api.errors import COMMON_RESPONSES
from api.stream import read_since
from ingest.events import HubEvent

router = APIRouter(tags=["stream"], responses=COMMON_RESPONSES)

KEEPALIVE_S = 15.0
RETRY_MS = 1000


def _frame(event: HubEvent) -> str:
    data = json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"), default=str)
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


@router.get(
    "/stream",
    summary="Live events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "an endless text/event-stream",
        }
    },
)
async def stream(
    request: Request,
    region: str | None = Query(
        None, pattern=r"^[0-9]{12}$", description="Only this region and below"
    ),
    last_event_id: str | None = Header(
        None, alias="Last-Event-ID", max_length=20, pattern=r"^[0-9]*$"
    ),
    since: int | None = Query(
        None, ge=0, le=2**62, description="Replay events after this id (like Last-Event-ID)"
    ),
    once: bool = Query(
        False, description="Send the replay and a hello, then close (for scripts and tests)"
    ),
    user: Principal = Depends(require(*ANY_ROLE, query_token=True)),
) -> StreamingResponse:
    """Each event is `id: <n>`, `event: <kind>` (alarm.new, alarm.updated, device.status,
    device.position, geofence.enter, geofence.exit, x.device.*), `data: <json>`. A reconnecting
    EventSource sends Last-Event-ID and receives every event it missed first. The first event,
    `hello`, carries the id the stream starts after. Use `access_token=` when headers cannot be set."""
    broadcaster = request.app.state.broadcaster
    engine = request.app.state.engine
    scopes = user.visible(region)
    sub = broadcaster.subscribe(scopes)
    start = since if since is not None else int(last_event_id) if last_event_id else None

    async def body():
        sent = broadcaster.last_id if start is None else start
        try:
            yield f"retry: {RETRY_MS}\n"
            if start is not None:
                while True:  # replay from the database what the client missed
                    backlog = await asyncio.to_thread(read_since, engine, sent, scopes)
                    for event in backlog:
                        yield _frame(event)
                        sent = event.id
                    if len(backlog) < 1000:
                        break
            hello = {"last_id": sent, "user": user.username, "regions": scopes}
            yield f"event: hello\ndata: {json.dumps(hello)}\n\n"
            if once:
                return
            while True:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if event is None or sub.overflowed:
                    return  # too far behind: the client reconnects with Last-Event-ID and replays
                if event.id <= sent:
                    continue
                yield _frame(event)
                sent = event.id
        finally:
            broadcaster.unsubscribe(sub)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
