"""The live stream (Server-Sent Events): alarms, alarm state changes and device status, by region."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import ANY_ROLE, Principal, get_engine, require
from api.errors import COMMON_RESPONSES
from api.stream import read_since, scoped
from ingest.events import HubEvent

router = APIRouter(tags=["stream"], responses=COMMON_RESPONSES)

KEEPALIVE_S = 15.0
RETRY_MS = 1000


_FRAMES: dict[tuple, str] = {}  # (event id, scopes) -> frame: one serialisation per audience
_FRAMES_MAX = 4096


def _frame(event: HubEvent, scopes: list[str] | None) -> str:
    """The SSE frame of an event as readers with these scopes see it; a thousand clients of the
    same scope share one serialisation."""
    key = (event.id, tuple(scopes) if scopes is not None else None)
    frame = _FRAMES.get(key)
    if frame is None:
        data = json.dumps(
            scoped(event, scopes).to_json(), ensure_ascii=False, separators=(",", ":"), default=str
        )
        frame = f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"
        if len(_FRAMES) >= _FRAMES_MAX:
            for old in list(_FRAMES)[: _FRAMES_MAX // 2]:
                del _FRAMES[old]
        _FRAMES[key] = frame
    return frame


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
    user: Principal = Depends(require(*ANY_ROLE, brief=True)),  # streams hold no connection
) -> StreamingResponse:
    """Each event is `id: <n>`, `event: <kind>` (alarm.new, alarm.updated, device.status,
    device.position, geofence.enter, geofence.exit, x.device.*), `data: <json>`. A reconnecting
    EventSource sends Last-Event-ID and receives every event it missed first. The first event,
    `hello`, carries the id the stream starts after. Pages authenticate with their session cookie
    (EventSource sends it), scripts with the Authorization header; tokens in URLs are refused."""
    broadcaster = request.app.state.broadcaster
    engine = get_engine(request)
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
                        yield _frame(event, scopes)
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
                chunk = []
                while True:  # what is queued goes out as one write
                    if event is None or sub.overflowed:
                        return  # too far behind: the client reconnects with Last-Event-ID, replays
                    if event.id > sent:
                        chunk.append(_frame(event, scopes))
                        sent = event.id
                    if sub.queue.empty() or len(chunk) >= 100:
                        break
                    event = sub.queue.get_nowait()
                if chunk:
                    yield "".join(chunk)
        finally:
            broadcaster.unsubscribe(sub)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
