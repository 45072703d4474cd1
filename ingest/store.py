"""The batch processor: validate a batch of MQTT messages and persist it (records, then live state)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from hardware.contract.payloads import (
    ANALYTICS_ALARMS,
    JPEG_MAGIC,
    PayloadError,
    QualityResult,
    check_snapshot,
    parse_alarm,
    parse_analytics,
    parse_heartbeat,
    parse_position,
    parse_state,
)
from hardware.contract.topics import TopicError, check_device_id, parse_topic
from ingest import alarms as alarm_store
from ingest import geofences, presence
from ingest.config import IngestSettings
from ingest.events import emit_events, emit_position_events, records
from ingest.fairshare import FairShare, Verdict

log = logging.getLogger(__name__)
PENDING_PAYLOAD_BYTES = 4096
KNOWN_REFRESH_S = 300.0  # new ids are asked for as they come; this catches retirements
UNKNOWN_TTL_S = 5.0
ALARM_SUFFIXES = frozenset(("alarm", "analytics"))
PENDING_KEY = "pending:"  # fair-share key of unknown ids: pending:<8-digit centre code>
BAD_TOPIC_KEY = "topic:invalid"
FLOODING_KIND = "device_flooding"  # the operators' alarm when a device is quarantined
FLOODING_SEVERITY = 2


@dataclass(slots=True)
class Message:
    """One MQTT message as received (mid/qos/epoch let the worker ack it after commit)."""

    topic: str
    payload: bytes
    qos: int = 0
    mid: int = 0
    retain: bool = False
    epoch: int = 0
    received: float = field(default_factory=time.time)
    # Fair-share verdicts, taken once: a batch retried across a database outage (or split)
    # must not charge its devices' budgets again.
    share: int = -1
    dl: int = -1


@dataclass
class BatchResult:
    """What one committed batch did."""

    counts: Counter = field(default_factory=Counter)
    events: list[int] = field(default_factory=list)
    latencies: list[tuple[str, float]] = field(default_factory=list)  # (suffix, payload ts)
    committed_at: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # phase -> seconds (profiling)


@dataclass
class _Work:
    dead: list[tuple[str, bytes, str, float]] = field(default_factory=list)
    pending: dict[str, list] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    back: set[str] = field(default_factory=set)  # said "online" (state): written at once
    gone: dict[str, datetime] = field(default_factory=dict)
    alarms: list[alarm_store.AlarmIn] = field(default_factory=list)
    positions: list[tuple] = field(default_factory=list)
    quality: list[tuple[str, QualityResult]] = field(default_factory=list)
    snapshots: dict[str, tuple[float, bytes]] = field(default_factory=dict)
    stamps: list[tuple[str, float]] = field(default_factory=list)
    crossings: list[geofences.Crossing] = field(default_factory=list)
    latest: list[tuple] = field(default_factory=list)  # newest position per device in the batch
    dropped: int = 0  # messages of quarantined devices (counted, not stored)
    quarantined: list[str] = field(default_factory=list)  # keys quarantined by this batch


class BatchStore:
    """Turns messages into rows. Keeps a cache of registered device ids; the DB stays the truth."""

    def __init__(self, conn: psycopg.Connection, cfg: IngestSettings, max_payload: int) -> None:
        self.conn = conn
        self.cfg = cfg
        self.max_payload = max_payload
        # registered device id -> how often its last_seen is written (s): at most
        # presence_flush_s and never less often than its heartbeat, spread per device (see
        # flush_interval) so that devices first heard together are not re-written together.
        self.known: dict[str, float] = {}
        self.known_at = 0.0
        self.unknown_until: dict[str, float] = {}
        self.flushed: dict[str, float] = {}  # device id -> when its last_seen was last written
        # Set by a worker that refreshes the cache from its own thread (refresh_known): then
        # _resolve only loads it when it was never loaded.
        self.background_refresh = False
        # Per-device budgets (set by the worker; None: no limits, e.g. tools and unit tests).
        self.fair: FairShare | None = None
        # (batch, work, result) of a batch whose records committed but whose live state did not
        self._half_done: tuple[list[Message], _Work, BatchResult] | None = None

    # ------------------------------------------------------------------ device cache
    def _resolve(self, ids: set[str]) -> set[str]:
        """The subset of ids that are registered devices (cached; misses asked in one query)."""
        now = time.monotonic()
        if self.known_at == 0.0 or (
            not self.background_refresh and now - self.known_at > KNOWN_REFRESH_S
        ):
            self.refresh_known(self.conn)
        ask = [i for i in ids if i not in self.known and self.unknown_until.get(i, 0) < now]
        if ask:
            rows = self.conn.execute(
                "SELECT id, heartbeat_s FROM devices WHERE id = ANY(%s::bpchar[]) "
                "AND retired_at IS NULL",
                (presence.id_array(ask),),
            ).fetchall()
            found = {r[0] for r in rows}
            self.known.update((r[0], self.flush_interval(r[0], r[1])) for r in rows)
            for i in ask:
                if i not in found:
                    self.unknown_until[i] = now + UNKNOWN_TTL_S
        return {i for i in ids if i in self.known}

    def flush_interval(self, device_id: str, heartbeat_s: int) -> float:
        """How often this device's last_seen is written while it stays online: at most
        presence_flush_s and at most its heartbeat interval, times a per-device factor in
        [0.5, 1) from its id, so a fleet heard for the first time all at once (worker start)
        does not come due again all at once. Always under the missed-heartbeat limit."""
        spread = 0.5 + (zlib.crc32(device_id.encode()) % 1000) / 2000
        return min(self.cfg.presence_flush_s, heartbeat_s) * spread

    def refresh_known(
        self, conn: psycopg.Connection, page: int = 100_000, pause_s: float = 0.0
    ) -> None:
        """(Re)load the registered devices; safe from another thread with its own connection.

        Devices the database has online get their last write time from last_seen, so a worker
        that starts (or restarts) under full load does not re-write every device it hears from
        in its first seconds (that wave of 100,000 updates stalled ingest for ~1 s).
        A reload beside live traffic reads `page` rows at a time and sleeps pause_s between
        pages: building 100,000 entries at once held the interpreter ~0.1 s, long enough to
        show as a latency spike in the batch loop."""
        known: dict[str, float] = {}
        flushed = self.flushed
        after = ""
        while True:
            rows = conn.execute(
                "SELECT id, heartbeat_s, CASE WHEN status = 'online' "
                "THEN extract(epoch FROM now() - last_seen)::float8 END "
                "FROM devices WHERE retired_at IS NULL AND id > %s ORDER BY id LIMIT %s",
                (after, page),
            ).fetchall()
            now = time.monotonic()
            for device_id, heartbeat_s, age in rows:
                if age is not None and device_id not in flushed:
                    flushed[device_id] = now - max(age, 0.0)
                known[device_id] = self.flush_interval(device_id, heartbeat_s)
            if len(rows) < page:
                break
            after = rows[-1][0]
            if pause_s:
                time.sleep(pause_s)
        # An id registered while this ran, in a range already read, is missing here: its next
        # message asks for it (one lookup), as for any id not seen before.
        self.known = known
        self.known_at = time.monotonic()
        self.unknown_until.clear()

    # ------------------------------------------------------------------ classify
    def _classify(self, batch: list[Message]) -> _Work:
        w = _Work()
        fair = self.fair
        now = time.monotonic()
        if fair is not None:
            fair.prune(now)
        routed: list[tuple[Message, str, str]] = []
        for m in batch:
            if len(m.payload) > self.max_payload:
                self._dead(
                    w,
                    m,
                    f"too large: {len(m.payload)} bytes > max_payload_bytes "
                    f"{self.max_payload} (payload stored truncated)",
                    now,
                )
                continue
            try:
                device_id, suffix = parse_topic(m.topic)
            except TopicError as exc:
                self._dead(w, m, f"bad topic: {exc}", now)
                continue
            routed.append((m, device_id, suffix))
        known = self._resolve({d for _, d, _ in routed})
        for m, device_id, suffix in routed:
            if fair is not None:
                key = device_id if device_id in known else PENDING_KEY + device_id[:8]
                if m.share < 0:
                    m.share = fair.admit(key, suffix in ALARM_SUFFIXES, now)
                if m.share:
                    self._over_share(w, m, key, device_id, Verdict(m.share), now)
                    continue
            if device_id not in known:
                problem = check_device_id(device_id)
                if problem:
                    self._dead(w, m, f"bad topic: {problem}", now)
                    continue
                entry = w.pending.setdefault(device_id, [0, "", b"", None, None])
                entry[0] += 1
                entry[1] = m.topic
                entry[2] = m.payload[:PENDING_PAYLOAD_BYTES]
                if suffix == "position":
                    try:
                        p = parse_position(m.payload)
                        entry[3], entry[4] = p.lon, p.lat
                    except Exception:  # noqa: BLE001 - a pending device's position is a hint
                        pass
                continue
            try:
                self._route(w, m, device_id, suffix)
            except PayloadError as exc:
                self._dead(w, m, f"invalid {suffix}: {exc}", now)
            except Exception as exc:  # noqa: BLE001 - no payload may stop the batch or the worker
                # A parser failure we did not foresee (RecursionError, MemoryError, a bug):
                # the message is refused by name like any invalid one.
                log.warning("unparseable %s on %s: %r", suffix, m.topic, exc)
                reason = f"invalid {suffix}: could not be parsed ({type(exc).__name__}: {exc})"
                self._dead(w, m, reason[:500], now)
        return w

    # ------------------------------------------------------------------ fair share
    def _key(self, topic: str) -> str:
        """Whose budget a message's dead letter is charged to: its device, the source of an
        unknown id, or one shared key for topics outside the contract."""
        try:
            device_id, _ = parse_topic(topic)
        except TopicError:
            return BAD_TOPIC_KEY
        return device_id if device_id in self.known else PENDING_KEY + device_id[:8]

    def _dead(
        self, w: _Work, m: Message, reason: str, now: float, payload: bytes | None = None
    ) -> None:
        """Dead-letter a message, within its device's daily dead-letter quota (fair share)."""
        raw = m.payload[: self.max_payload] if payload is None else payload
        fair = self.fair
        if fair is not None:
            key = self._key(m.topic)
            if m.dl < 0:
                m.dl = fair.charge_dead_letter(key, len(raw) + len(m.topic), now)
            verdict = m.dl
            if verdict == Verdict.QUARANTINED:
                w.dropped += 1
                return
            if verdict == Verdict.QUARANTINE_START:
                self._quarantine_started(w, m, key, now, raw)
                return
        w.dead.append((m.topic, raw, reason, m.received))

    def _over_share(
        self, w: _Work, m: Message, key: str, device_id: str, verdict: Verdict, now: float
    ) -> None:
        fair = self.fair
        assert fair is not None
        if verdict == Verdict.QUARANTINED:
            w.dropped += 1
        elif verdict == Verdict.QUARANTINE_START:
            self._quarantine_started(w, m, key, now, m.payload[: self.max_payload])
        else:
            cfg = self.cfg
            self._dead(
                w,
                m,
                f"rate limited: {key} is over its share ({cfg.device_msgs_per_s:g} messages/s, "
                f"{cfg.device_alarms_per_s:g} alarms/s, bursts of {cfg.device_burst_s:g} s)",
                now,
            )

    def _quarantine_started(self, w: _Work, m: Message, key: str, now: float, raw: bytes) -> None:
        """A device (or pending source) was just quarantined: keep the message that did it as
        a dead letter saying so, and raise a device_flooding alarm for the operators."""
        fair = self.fair
        assert fair is not None
        why = fair.why(key)
        secs = self.cfg.quarantine_s
        if key.startswith(PENDING_KEY) or key == BAD_TOPIC_KEY:
            who = f"source {key}"
        else:
            who = f"device {key}"
        log.warning("%s flooding: quarantined for %.0f s (%s)", who, secs, why)
        w.dead.append(
            (
                m.topic,
                raw,
                f"quarantined: {who} flooding ({why}); its messages are dropped for {secs:.0f} s",
                m.received,
            )
        )
        w.quarantined.append(key)
        if key in self.known:
            at = fair.started(key) or time.time()
            w.alarms.append(
                alarm_store.AlarmIn(
                    key,
                    f"gw-quarantine-{at:.3f}",  # the same when a batch is retried
                    FLOODING_KIND,
                    FLOODING_SEVERITY,
                    at,
                    None,
                    None,
                    {
                        "message": f"device {key} flooding: quarantined",
                        "reason": why,
                        "quarantined_for_s": secs,
                        "limits": {
                            "messages_per_s": self.cfg.device_msgs_per_s,
                            "alarms_per_s": self.cfg.device_alarms_per_s,
                            "burst_s": self.cfg.device_burst_s,
                            "deadletter_bytes_per_day": self.cfg.device_deadletter_bytes_per_day,
                        },
                    },
                )
            )

    def _route(self, w: _Work, m: Message, device_id: str, suffix: str) -> None:
        if suffix == "heartbeat":
            hb = parse_heartbeat(m.payload)
            w.seen.add(device_id)
            w.stamps.append((suffix, hb.ts))
        elif suffix == "alarm":
            a = parse_alarm(m.payload)
            w.alarms.append(
                alarm_store.AlarmIn(
                    device_id, a.msg_id, a.kind, a.severity, a.ts, a.lon, a.lat, a.detail
                )
            )
            w.seen.add(device_id)
            w.stamps.append((suffix, a.ts))
        elif suffix == "position":
            p = parse_position(m.payload)
            w.positions.append((device_id, p.ts, p.lon, p.lat, p.speed, p.heading))
            w.seen.add(device_id)
            w.stamps.append((suffix, p.ts))
        elif suffix == "analytics":
            r = parse_analytics(m.payload)
            w.seen.add(device_id)
            w.stamps.append((suffix, r.ts))
            if isinstance(r, QualityResult):
                w.quality.append((device_id, r))
                return
            kind, severity = ANALYTICS_ALARMS[r.type]
            where = getattr(r, "zone", None) or getattr(r, "line", None) or ""
            msg_id = r.msg_id or f"{r.type}:{where}:{r.ts:.3f}"[:64]
            w.alarms.append(
                alarm_store.AlarmIn(
                    device_id, msg_id, kind, severity, r.ts, None, None, r.model_dump(mode="json")
                )
            )
        elif suffix == "snapshot":
            jpeg = check_snapshot(m.payload)
            w.seen.add(device_id)
            w.snapshots[device_id] = (m.received, jpeg)
        elif suffix == "state":
            state = parse_state(m.payload)
            if state == "offline":
                w.gone[device_id] = datetime.fromtimestamp(m.received, UTC)
                w.seen.discard(device_id)
                w.back.discard(device_id)
            elif not m.retain:  # a retained "online" is old news, not evidence of life
                # Written at once (not when due): another worker may have taken its Last Will.
                w.back.add(device_id)
                w.gone.pop(device_id, None)

    # ------------------------------------------------------------------ persist
    def process(self, batch: list[Message]) -> BatchResult:
        """Validate and persist the batch (two transactions, see _process); raises on database
        failure (the caller retries the same batch, so nothing here may have effects outside
        the database)."""
        try:
            return self._process(batch)
        except BaseException:
            try:
                self.conn.rollback()
            except psycopg.Error:
                pass
            raise

    def _process(self, batch: list[Message]) -> BatchResult:
        """Two short transactions: the records (history, alarms, dead letters, ...), then the
        devices' live state (presence, last position). Every lock is taken in one global order
        (see _live_state) so workers sharing a subscription never deadlock, and the hot device
        rows are held only for the few milliseconds of the second transaction. Both are
        idempotent, so a batch that fails between them is simply processed again; a retry of
        the same batch after the first committed does only the second."""
        t0 = time.perf_counter()
        half = self._half_done
        if half is not None and half[0] is batch:
            _, w, res = half
        else:
            res = BatchResult()
            w = self._classify(batch)
            res.phases["classify"] = time.perf_counter() - t0
            self._records(w, res)
            self._half_done = (batch, w, res)
        self._live_state(w, res)
        self._half_done = None
        res.latencies = w.stamps
        res.counts["messages"] = len(batch)
        if w.dropped:
            res.counts["dropped"] = w.dropped
        if w.quarantined:
            res.counts["quarantined"] = len(w.quarantined)
        return res

    def _records(self, w: _Work, res: BatchResult) -> None:
        """Transaction 1: everything that is a record of what was said, and its events."""
        t0 = time.perf_counter()
        cur = self.conn.cursor()
        events: list[tuple[str, str | None, dict[str, Any]]] = []
        if w.pending:
            self._pending(cur, w, res)
        if w.dead:
            cur.execute(
                "INSERT INTO dead_letters (topic, payload, reason, received_at) "
                "SELECT t, p, r, to_timestamp(at) FROM unnest(%s::text[], %s::bytea[], %s::text[], "
                "%s::float8[]) AS u(t, p, r, at)",
                (
                    [d[0] for d in w.dead],
                    [d[1] for d in w.dead],
                    [d[2] for d in w.dead],
                    [d[3] for d in w.dead],
                ),
            )
            res.counts["dead_letters"] = len(w.dead)
        t_positions = time.perf_counter()
        if w.positions:
            events += self._positions(cur, w)
        t_alarms = time.perf_counter()
        if w.quality:
            self._quality(cur, w)
            res.counts["quality"] = len(w.quality)
        if w.snapshots:
            ids = sorted(w.snapshots)
            cur.execute(
                "INSERT INTO device_snapshots (device_id, at, jpeg) SELECT d, to_timestamp(at), j "
                "FROM unnest(%s::bpchar[], %s::float8[], %s::bytea[]) AS u(d, at, j) "
                "ON CONFLICT (device_id) DO UPDATE SET at = excluded.at, jpeg = excluded.jpeg "
                "WHERE device_snapshots.at <= excluded.at",
                (ids, [w.snapshots[i][0] for i in ids], [w.snapshots[i][1] for i in ids]),
            )
            res.counts["snapshots"] = len(ids)
        if w.alarms:
            outcome = alarm_store.store_alarms(
                cur,
                w.alarms,
                self.cfg.alarm_merge_window_s,
                self.cfg.camera_radius_m,
                self.cfg.camera_links,
            )
            res.counts["alarms_new"] = len(outcome.new)
            res.counts["alarms_merged"] = len(w.alarms) - len(outcome.new) - outcome.duplicates
            res.counts["alarms_duplicate"] = outcome.duplicates
            events += outcome.events()
            if w.crossings:
                ids = {(a["device_id"], a["msg_id"]): a["id"] for a in outcome.new}
                geofences.record_crossings(cur, w.crossings, ids)
        elif w.crossings:
            geofences.record_crossings(cur, w.crossings, {})
        t_events = time.perf_counter()
        if events:
            res.events = emit_events(cur, events)
        t_commit = time.perf_counter()
        self.conn.commit()
        t_done = time.perf_counter()
        res.committed_at = time.time()
        res.phases.update(
            other=t_positions - t0,
            positions=t_alarms - t_positions,
            alarms=t_events - t_alarms,
            events=t_commit - t_events,
            commit=t_done - t_commit,
        )

    def _pending(self, cur: psycopg.Cursor, w: _Work, res: BatchResult) -> None:
        """Record messages of unknown ids for adoption, at most pending_max_per_source ids per
        source (the id's 8-digit centre code) counting those already waiting; the messages of
        ids beyond the cap are dead-lettered (within their source's dead-letter quota)."""
        ids = sorted(w.pending)  # lock order, see _live_state
        cap = self.cfg.pending_max_per_source
        taken = upsert_pending(cur, w.pending, cap)
        res.counts["pending"] = sum(w.pending[i][0] for i in taken)
        now = time.monotonic()
        for i in ids:
            if i in taken:
                continue
            n, topic, payload = w.pending[i][0], w.pending[i][1], w.pending[i][2]
            res.counts["pending_refused"] += n
            self._dead(
                w,
                Message(topic, payload, received=time.time()),
                f"pending cap: {cap} unknown devices of source {i[:8]} are already waiting "
                f"(GRIDWATCH_INGEST_PENDING_MAX_PER_SOURCE); register the device or clear "
                f"pending ones ({n} message(s) of this id in the batch, the last kept)",
                now,
                payload,
            )

    def _live_state(self, w: _Work, res: BatchResult) -> None:
        """Transaction 2: presence (last_seen, online/offline with intervals) and the newest
        position of the devices in the batch, with their events.

        All the device rows it will change are locked first, in id order, by one statement;
        every other lock a worker takes on a device's rows (device_presence) comes after it.
        Two workers whose batches share devices therefore wait for each other at most for
        this short transaction, and never deadlock (PostgreSQL would break a deadlock only
        after deadlock_timeout, 1 s: the stall two workers used to hit).
        Presence lives in memory: a device's last_seen is written at most every flush interval
        (see flush_interval), online/offline changes at once."""
        t0 = time.perf_counter()
        now = datetime.now(UTC)
        now_m = time.monotonic()
        flushed = self.flushed
        known = self.known
        due = {d for d in w.seen if now_m - flushed.get(d, -1e18) >= known.get(d, 0.0)}
        touch = list(due | w.back)
        res.counts["presence_writes"] = len(touch)
        lock = set(touch) | set(w.gone) | {p[0] for p in w.latest}
        if not lock:
            return
        cur = self.conn.cursor()
        cur.execute(
            "SELECT count(*) FROM (SELECT 1 FROM devices WHERE id = ANY(%s::bpchar[]) "
            "ORDER BY id FOR NO KEY UPDATE) AS l",
            (presence.id_array(sorted(lock)),),
        )
        transitions = presence.touch(cur, touch, now)
        transitions += presence.go_offline(cur, w.gone, "last_will")
        moved = self._last_positions(cur, w.latest)
        t_events = time.perf_counter()
        ids = emit_events(
            cur, [("device.status", t.region_code, t.event_payload()) for t in transitions]
        )
        ids += emit_position_events(cur, moved)
        self.conn.commit()
        res.committed_at = time.time()
        res.events += ids
        res.phases["presence"] = t_events - t0
        res.phases["events"] = res.phases.get("events", 0.0) + time.perf_counter() - t_events
        for d in touch:
            flushed[d] = now_m
        for d in w.gone:
            flushed.pop(d, None)

    def _positions(self, cur: psycopg.Cursor, w: _Work) -> list:
        """Position history (every report) and geofence crossings of each device's newest."""
        pos = sorted(w.positions, key=lambda p: (p[0], p[1]))  # lock order, see _live_state
        cur.execute(
            "INSERT INTO positions (device_id, ts, geom, speed_kmh, heading_deg) "
            "SELECT d, to_timestamp(ts), ST_SetSRID(ST_MakePoint(x, y), 4326), sp, hd "
            "FROM json_to_recordset(%s::json) AS u(d bpchar, ts float8, x float8, y float8, "
            "sp float8, hd float8) ON CONFLICT DO NOTHING",
            (records(("d", "ts", "x", "y", "sp", "hd"), pos),),
        )
        latest: dict[str, tuple] = {}
        for p in pos:
            if p[0] not in latest or latest[p[0]][1] < p[1]:
                latest[p[0]] = p
        lp = list(latest.values())
        w.latest = lp
        events: list = []
        crossings = geofences.check_positions(
            cur, [(p[0], datetime.fromtimestamp(p[1], UTC), p[2], p[3]) for p in lp]
        )
        for c in crossings:
            events.append(geofences.crossing_event(c))
            if c.alarm_kind:
                w.alarms.append(
                    alarm_store.AlarmIn(
                        c.device_id,
                        geofences.crossing_msg_id(c),
                        c.alarm_kind,
                        c.severity,
                        c.at.timestamp(),
                        c.lon,
                        c.lat,
                        {
                            "geofence_id": c.geofence_id,
                            "geofence": c.geofence_name,
                            "transition": c.transition,
                        },
                    )
                )
        w.crossings = crossings
        return events

    def _last_positions(self, cur: psycopg.Cursor, latest: list[tuple]) -> list[tuple]:
        """Put each device's newest position on the device (when newer than what it has);
        the rows that moved, for their device.position events (payload built in SQL)."""
        if not latest:
            return []
        return cur.execute(
            "UPDATE devices d SET last_position = ST_SetSRID(ST_MakePoint(u.x, u.y), 4326), "
            "last_position_at = to_timestamp(u.ts), last_speed_kmh = u.sp, last_heading_deg = u.hd "
            "FROM json_to_recordset(%s::json) AS u(d bpchar, ts float8, x float8, y float8, "
            "sp float8, hd float8) "
            "WHERE d.id = u.d AND (d.last_position_at IS NULL OR d.last_position_at < to_timestamp(u.ts)) "
            "RETURNING d.id, d.region_code, u.ts, u.x, u.y, u.sp, u.hd",
            (records(("d", "ts", "x", "y", "sp", "hd"), latest),),
        ).fetchall()

    def _quality(self, cur: psycopg.Cursor, w: _Work) -> None:
        ids = sorted({d for d, _ in w.quality})
        prev = {
            r[0]: (r[1], set(r[2] or []))
            for r in cur.execute(
                "SELECT DISTINCT ON (device_id) device_id, intact, faults FROM camera_health "
                "WHERE device_id = ANY(%s::bpchar[]) ORDER BY device_id, ts DESC",
                (ids,),
            ).fetchall()
        }
        rows = []
        for device_id, r in sorted(w.quality, key=lambda x: x[1].ts):
            faults = r.fault_codes()
            intact = r.is_intact()
            thumb = None
            if r.thumbnail_b64():
                try:
                    raw = base64.b64decode(r.thumbnail_b64() or "", validate=True)
                    thumb = raw if raw.startswith(JPEG_MAGIC) else None
                except (binascii.Error, ValueError):
                    thumb = None
            metrics = dict(r.metrics or {})
            if r.scores():
                metrics["fault_scores"] = r.scores()
            rows.append((device_id, r.ts, intact, faults, metrics or None, thumb))
            before = prev.get(device_id)
            onset = not intact and (before is None or before[0] or not set(faults) <= before[1])
            if onset:
                kind, severity = ANALYTICS_ALARMS["quality"]
                w.alarms.append(
                    alarm_store.AlarmIn(
                        device_id,
                        r.msg_id or f"quality:{r.ts:.3f}",
                        kind,
                        severity,
                        r.ts,
                        None,
                        None,
                        {
                            "faults": faults,
                            "new_faults": sorted(set(faults) - (before[1] if before else set())),
                            # The evidence: scores here, the marked JPEG in the camera_health
                            # row of this device at health_ts (its `thumbnail` column).
                            "scores": r.scores(),
                            "health_ts": r.ts,
                            "has_image": thumb is not None,
                        },
                    )
                )
            prev[device_id] = (intact, set(faults))
        cur.execute(
            "INSERT INTO camera_health (device_id, ts, intact, faults, metrics, thumbnail) "
            "SELECT d, to_timestamp(ts), i, f::jsonb, m::jsonb, t FROM unnest(%s::bpchar[], "
            "%s::float8[], %s::bool[], %s::text[], %s::text[], %s::bytea[]) AS u(d, ts, i, f, m, t) "
            "ON CONFLICT (device_id, ts) DO NOTHING",
            (
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                [json.dumps(r[3]) for r in rows],
                [json.dumps(r[4]) if r[4] is not None else None for r in rows],
                [r[5] for r in rows],
            ),
        )


def upsert_pending(cur: psycopg.Cursor, pending: dict[str, list], cap: int) -> set[str]:
    """Record unknown ids for adoption: {id: [count, topic, payload, lon, lat]}; at most `cap`
    ids per source (the id's 8-digit centre code) counting those already waiting. Returns the
    ids taken (the others are over their source's cap). Used by ingest and by the protocol
    gateways, which may not publish for devices they do not front."""
    ids = sorted(pending)  # lock order, see _live_state
    rows = cur.execute(
        "WITH u AS (SELECT * FROM unnest(%(ids)s::bpchar[], %(n)s::int[], %(t)s::text[], "
        "%(p)s::bytea[], %(lon)s::float8[], %(lat)s::float8[]) AS u(id, n, t, p, lon, lat)), "
        "fresh AS (SELECT u.id, left(u.id::text, 8) AS src, row_number() OVER "
        "(PARTITION BY left(u.id::text, 8) ORDER BY u.id) AS rk FROM u WHERE NOT EXISTS "
        "(SELECT 1 FROM pending_devices pd WHERE pd.id = u.id)), "
        "room AS (SELECT s.src, %(cap)s - (SELECT count(*) FROM pending_devices pd "
        "WHERE left(pd.id::text, 8) = s.src) AS free FROM (SELECT DISTINCT src FROM fresh) s), "
        "refused AS (SELECT f.id FROM fresh f JOIN room r ON r.src = f.src WHERE f.rk > r.free) "
        "INSERT INTO pending_devices AS pd (id, message_count, last_topic, last_payload, "
        "position) SELECT id, n, t, p, CASE WHEN lon IS NULL THEN NULL ELSE "
        "ST_SetSRID(ST_MakePoint(lon, lat), 4326) END FROM u "
        "WHERE u.id NOT IN (SELECT id FROM refused) "
        "ON CONFLICT (id) DO UPDATE SET last_seen = now(), "
        "message_count = pd.message_count + excluded.message_count, "
        "last_topic = excluded.last_topic, last_payload = excluded.last_payload, "
        "position = coalesce(excluded.position, pd.position) RETURNING pd.id",
        {
            "ids": ids,
            "n": [pending[i][0] for i in ids],
            "t": [pending[i][1] for i in ids],
            "p": [pending[i][2] for i in ids],
            "lon": [pending[i][3] for i in ids],
            "lat": [pending[i][4] for i in ids],
            "cap": cap,
        },
    ).fetchall()
    return {r[0] for r in rows}
