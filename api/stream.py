"""The live event broadcaster: LISTEN gw_events, read new hub_events once, fan out to SSE clients."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import text

from api.scope import covered_by_any
from gridwatch.db import get_engine
from gridwatch.settings import Settings
from ingest.events import CHANNEL, HubEvent, events_since

log = logging.getLogger(__name__)

QUEUE_SIZE = 2000  # a client this far behind is dropped and replays from the database on reconnect
POLL_S = 2.0  # re-read even without a NOTIFY (covers a lost LISTEN connection)


@dataclass(eq=False)
class Subscriber:
    """One connected client: which regions it sees (None = all) and its queue."""

    scopes: list[str] | None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def wants(self, event: HubEvent) -> bool:
        if self.scopes is None or event.region_code is None:
            return True
        return covered_by_any(self.scopes, event.region_code)


def visible(events: list[HubEvent], scopes: list[str] | None) -> list[HubEvent]:
    """The events a client with these scopes may see."""
    probe = Subscriber(scopes)
    return [e for e in events if probe.wants(e)]


def read_since(engine, last_id: int, scopes: list[str] | None, limit: int = 1000) -> list[HubEvent]:
    """Events after last_id that these scopes may see (ingest.events.events_since, the one reader);
    the cameras linked to alarms carry their region, so each reader gets only its own (scoped)."""
    region = scopes[0] if scopes is not None and len(scopes) == 1 else None
    with engine.connect() as conn:
        events = events_since(conn, last_id, region, limit)
        if scopes is not None and not scopes:
            return []
        events = visible(events, scopes)
        _camera_regions(conn, events)
    return events


def _linked(event: HubEvent) -> list[dict]:
    cams = event.payload.get("cameras") if isinstance(event.payload, dict) else None
    return [c for c in cams if isinstance(c, dict)] if isinstance(cams, list) else []


def _camera_regions(conn, events: list[HubEvent]) -> None:
    """Write each linked camera's region into the event (one query for the whole batch)."""
    ids = {str(c.get("device_id")) for e in events for c in _linked(e) if "region_code" not in c}
    if not ids:
        return
    rows = conn.execute(
        text("SELECT id, region_code FROM devices WHERE id = ANY(:ids)"), {"ids": list(ids)}
    )
    regions = {str(r[0]).strip(): r[1] for r in rows}
    for event in events:
        for cam in _linked(event):
            cam.setdefault("region_code", regions.get(str(cam.get("device_id"))))


def scoped(event: HubEvent, scopes: list[str] | None) -> HubEvent:
    """The event as a reader with these scopes may see it: linked cameras outside are dropped."""
    cams = _linked(event)
    if scopes is None or not cams:
        return event
    keep = [c for c in cams if covered_by_any(scopes, c.get("region_code"))]
    if len(keep) == len(cams):
        return event
    return dataclasses.replace(event, payload={**event.payload, "cameras": keep})


class Broadcaster:
    """One LISTEN connection per API process; every new event is read once and queued to clients."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.subscribers: set[Subscriber] = set()
        self.last_id = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.listening = False

    @property
    def client_count(self) -> int:
        return len(self.subscribers)

    def _engine(self):
        return get_engine(self.settings, role="api")

    async def start(self) -> None:
        """Remember where the bus is now, then listen and fan out in the background."""
        try:
            self.last_id = await asyncio.to_thread(self._current_max)
        except Exception as exc:  # the database may come up later; start from the beginning then
            log.warning("event bus not readable at start (%s); will retry", exc)
        self._tasks = [
            asyncio.create_task(self._listen(), name="gw-listen"),
            asyncio.create_task(self._fanout(), name="gw-fanout"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _current_max(self) -> int:
        with self._engine().connect() as conn:
            return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM hub_events")).scalar())

    async def _listen(self) -> None:
        url = self.settings.db_url(role="api").replace("postgresql+psycopg://", "postgresql://", 1)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    self._wake.set()  # catch up on anything missed while not listening
                    async for _notify in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN %s lost (%s); polling until it is back", CHANNEL, exc)
            self.listening = False
            await asyncio.sleep(1.0)

    async def _fanout(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=POLL_S)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while True:
                    events = await asyncio.to_thread(read_since, self._engine(), self.last_id, None)
                    if not events:
                        break
                    self.last_id = events[-1].id
                    self._deliver(events)
                    if len(events) < 1000:
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading hub_events failed (%s); retrying", exc)
                await asyncio.sleep(0.5)

    def _deliver(self, events: list[HubEvent]) -> None:
        for sub in list(self.subscribers):
            if sub.overflowed:
                continue
            for event in events:
                if not sub.wants(event):
                    continue
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    sub.overflowed = True  # the client reconnects and replays from its last id
                    sub.queue.put_nowait(None) if not sub.queue.full() else None
                    break

    def subscribe(self, scopes: list[str] | None) -> Subscriber:
        sub = Subscriber(scopes)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
