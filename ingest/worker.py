"""The ingest worker: MQTT v5 persistent session, manual acks after commit, batching, sweeps."""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gridwatch.settings import Settings, get_settings
from hardware.contract.topics import HUB_EVENTS_TOPIC, PREFIX, subscriptions
from ingest import presence
from ingest.brokergate import BrokerGate
from ingest.config import IngestSettings, get_ingest_settings
from ingest.dbconn import connect
from ingest.events import emit_events, event_messages_by_id, prune_events
from ingest.fairshare import FairShare
from ingest.mqttclient import LeanClient
from ingest.provision import run_provisioner
from ingest.retention import prune_dead_letters, prune_pending
from ingest.store import KNOWN_REFRESH_S, BatchResult, BatchStore, Message

_ID_IN_TOPIC = slice(len(PREFIX), len(PREFIX) + 20)  # the device id in gw/v1/{id}/...
log = logging.getLogger("gridwatch.ingest")
RELAY_LOCK = 0x67770002
PHASES = ("classify", "other", "positions", "alarms", "events", "commit", "presence")
HOUSEKEEPING_S = 3600.0  # partitions and event pruning
TALLY_COMPACT_S = 5.0  # alarm_tally's deltas folded (the alarm list's counts sum what is left)
# The batch connection's settings. No JIT: it compiled e.g. the camera-link statement of a batch
# with many new alarms for ~360 ms to run it in ~10 ms (this is short OLTP work, every batch).
# No sequential scans: every batch statement is a keyed or spatial index lookup, but statistics
# taken while a table was empty (a fresh install, or right after a bulk delete) made the planner
# scan alarms/alarm_messages whole for every batch as they grew, and one worker at 30,000 msg/s
# fell behind by seconds until the next autoanalyze (bench/RESULTS.md).
BATCH_SESSION = "-c jit=off -c enable_seqscan=off"
SWEEP_LIMIT = 5000  # devices marked offline per sweep; a bigger wave takes a few sweeps
# Failures that mean "the database is not there right now": retry the same batch later.
TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError)
# ... except these, which say "this batch is too big" (they are OperationalErrors too): a batch
# that makes the server run out of memory or past a limit is split, never retried as it is.
TOO_BIG = (psycopg.errors.OutOfMemory, psycopg.errors.ProgramLimitExceeded)
# A batch that fails as "transient" this many times in a row, each time right after the
# database answered again, is split too: it is the batch, not the database (a backend it
# crashes, a connection it breaks).
SAME_BATCH_FAILURES = 3


def ensure_partitions(conn: psycopg.Connection) -> None:
    """Position partitions from last month to two months ahead exist (idempotent)."""
    conn.execute("SELECT gw_ensure_position_partitions((now() - interval '1 month')::date, 3)")


@dataclass
class Stats:
    """Counters, and publish->commit latencies when asked for (bench)."""

    counts: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    keep_latencies: bool = False
    batches: int = 0
    db_retries: int = 0
    batch_log: list[list[float]] = field(default_factory=list)  # bench: per-batch timings

    def add(self, res: BatchResult) -> None:
        self.batches += 1
        for k, v in res.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        if self.keep_latencies:
            ph = res.phases
            self.batch_log.append(
                [res.committed_at, res.counts.get("messages", 0)]
                + [round(ph.get(k, 0.0) * 1000, 2) for k in PHASES]
            )
            for suffix, ts in res.latencies:
                self.latencies.setdefault(suffix, []).append(res.committed_at - ts)


class IngestWorker:
    """Subscribe, batch, persist, ack. Run with run(); stop with stop() or SIGTERM/SIGINT."""

    def __init__(
        self,
        settings: Settings | None = None,
        cfg: IngestSettings | None = None,
        stats_file: Path | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.cfg = cfg or get_ingest_settings()
        self.stats = Stats(keep_latencies=stats_file is not None)
        self.stats_file = stats_file
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._inbox: list[Message] = []
        self._inbox_bytes = 0
        # Quarantined devices (fair share) -> until (monotonic): their messages are acked and
        # dropped as they arrive, before a Message is even made (see _on_publish).
        self._blocked: dict[str, float] = {}
        self._dropped_acks: list[tuple[int, int]] = []  # (mid, epoch) of QoS 1 drops
        self._dropped = 0
        self._fair_seen: dict[str, float] | None = None
        self._gate: BrokerGate | None = None
        self._epoch = 0
        self._connected = threading.Event()
        self.conn: psycopg.Connection | None = None
        self.store: BatchStore | None = None
        self.client = self._make_client()

    # ------------------------------------------------------------------ MQTT
    @property
    def share_group(self) -> str:
        """'' (default: a plain subscription in a persistent session, which Mosquitto restores
        across its restarts); 'auto': the generated, unguessable group of GRIDWATCH_HOME; else
        the named group (several workers share it; see docs/security.md for its restart limit)."""
        group = self.cfg.share_group
        if group == "auto":
            from gridwatch.secrets import load_secrets

            return load_secrets(self.settings.home)["share_group"]
        return group

    def _make_client(self) -> LeanClient:
        client = LeanClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.cfg.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        user, password = self.settings.hub_credentials()
        client.username_pw_set(user, password)
        client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.sink = self._on_publish
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        with self._cond:
            self._epoch += 1
            # Unacked messages of the old connection will be redelivered; drop them here.
            self._inbox = [m for m in self._inbox if m.qos == 0]
            self._inbox_bytes = sum(len(m.payload) for m in self._inbox)
            self._cond.notify_all()
        group = self.share_group
        retain = 0 if group else 1  # shared subscriptions get no retained msgs
        client.subscribe(
            [(f, SubscribeOptions(qos=1, retainHandling=retain)) for f in subscriptions(group)]
        )
        log.info(
            "connected (session present: %s), subscribed to %s",
            flags.session_present,
            ", ".join(subscriptions(group)) if not group else f"{len(subscriptions())} shared",
        )
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason_code)

    def _quarantined(self, active: dict[str, float]) -> None:
        """The fair share's quarantined keys changed (a quarantine started mid-batch, or some
        ended): drop their devices' messages in the network thread from now on, and stop them
        at the broker (registered devices only: a pending source's key is not a device id)."""
        self._fair_seen = active
        self._blocked = {
            k: u for k, u in active.items() if not k.startswith(("pending:", "topic:"))
        }
        if self._gate is not None:
            self._gate.update(self._blocked)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        self._on_publish(msg.topic, msg.payload, msg.qos, msg.mid, msg.retain)

    def _on_publish(self, topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
        blocked = self._blocked
        if blocked:
            until = blocked.get(topic[_ID_IN_TOPIC])
            if until is not None and time.monotonic() < until and topic.startswith(PREFIX):
                with self._cond:
                    self._dropped += 1
                    if qos:
                        self._dropped_acks.append((mid, self._epoch))
                return
        m = Message(topic, payload, qos, mid, retain, self._epoch, time.time())
        with self._cond:
            # Back-pressure: past inbox_max_bytes the network thread waits for the batch loop to
            # take a batch (the broker keeps the rest), so big payloads cannot fill the memory.
            while self._inbox_bytes >= self.cfg.inbox_max_bytes and not self._stop.is_set():
                self._cond.wait(timeout=1.0)
            self._inbox.append(m)
            self._inbox_bytes += len(payload)
            if (
                len(self._inbox) >= self.cfg.batch_max
                or self._inbox_bytes >= self.cfg.batch_max_bytes
            ):
                self._cond.notify_all()

    def _take_batch(self) -> list[Message]:
        """The oldest messages of the inbox, at most batch_max of them and batch_max_bytes of
        payload (at least one). Called with _cond held."""
        inbox = self._inbox
        limit, n, size = self.cfg.batch_max_bytes, 0, 0
        end = min(len(inbox), self.cfg.batch_max)
        if self._inbox_bytes <= limit and end == len(inbox):
            n, size = end, self._inbox_bytes
        else:
            while n < end and (n == 0 or size + len(inbox[n].payload) <= limit):
                size += len(inbox[n].payload)
                n += 1
        batch, self._inbox = inbox[:n], inbox[n:]
        self._inbox_bytes -= size
        self._cond.notify_all()  # wake a network thread held back by inbox_max_bytes
        return batch

    def _connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        props.ReceiveMaximum = self.cfg.receive_maximum
        host, port = self.settings.mqtt_endpoint()
        self.client.connect_async(host, port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()

    # ------------------------------------------------------------------ database
    def _db(self) -> BatchStore:
        """A working connection (reconnecting with back-off until the database answers)."""
        delay = 0.1
        while self.store is None or self.conn is None or self.conn.closed:
            try:
                conn = connect(autocommit=False, options=BATCH_SESSION)
                self.conn = conn
                if self.store is None:
                    self.store = BatchStore(conn, self.cfg, self.settings.max_payload_bytes)
                    self.store.background_refresh = True  # see _housekeeping
                    if self.cfg.fair_share:
                        self.store.fair = FairShare(self.cfg)
                        self.store.fair.on_quarantine = self._quarantined
                    # Loaded before subscribing, not by the first batch (~60 ms at 100,000
                    # devices, while a backlog may already be waiting in the broker).
                    self.store.refresh_known(conn)
                else:
                    # The same store on a new connection: it keeps its device cache, what it
                    # has written, and a batch whose records committed before the outage
                    # (only its live state is then left to do).
                    self.store.conn = conn
                ensure_partitions(conn)
                conn.commit()
                log.info("database connected")
            except TRANSIENT as exc:
                self.conn = None
                if self._stop.is_set():
                    raise
                log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.cfg.db_retry_max_s)
        return self.store

    def _drop_db(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass
        self.conn = None

    def persist(self, batch: list[Message]) -> BatchResult:
        """Commit the batch, retrying (with back-off) across database outages; never gives up
        while running, because its messages are unacked and must not be lost. A batch the
        database or this process cannot take as a whole (a message the database refuses, out
        of memory, a limit, an unforeseen error) is split; a single such message is
        dead-lettered with the reason, so nothing stops the stream."""
        delay = 0.05
        failures = 0
        while True:
            store = self._db()
            try:
                return store.process(batch)
            except TOO_BIG as exc:
                log.warning("batch of %d too big for the database (%s)", len(batch), exc)
                return self._split(batch, exc)
            except TRANSIENT as exc:
                self.stats.db_retries += 1
                failures += 1
                self._drop_db()
                if failures >= SAME_BATCH_FAILURES and self._database_answers():
                    log.warning(
                        "batch of %d failed %d times while the database answers (%s); splitting",
                        len(batch),
                        failures,
                        exc,
                    )
                    return self._split(batch, exc)
                log.warning("database error (%s); batch kept, retrying in %.2fs", exc, delay)
                if self._stop.is_set() and delay > 1:
                    raise
                time.sleep(delay + random.random() * delay / 2)
                delay = min(delay * 2, self.cfg.db_retry_max_s)
            except psycopg.Error as exc:
                return self._split(batch, exc)
            except Exception as exc:  # noqa: BLE001 - MemoryError, an encoder's error, a bug
                log.warning("batch of %d failed (%r)", len(batch), exc)
                return self._split(batch, exc)

    def _database_answers(self) -> bool:
        """Whether a fresh connection runs SELECT 1 (the database itself is up)."""
        try:
            with connect(autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - any failure means "not now"
            return False

    def _split(self, batch: list[Message], exc: BaseException) -> BatchResult:
        """Persist a failed batch in halves, recursively: the message at fault is found (and
        dead-lettered) in ~2 log2(n) transactions instead of n, so a device that keeps sending
        one cannot slow everyone else's batches to one message at a time."""
        if len(batch) == 1:
            return self._reject(batch[0], exc)
        log.warning("batch of %d rejected (%s); persisting it in halves", len(batch), exc)
        half = len(batch) // 2
        merged = BatchResult()
        for part in (batch[:half], batch[half:]):
            r = self.persist(part)
            merged.counts.update(r.counts)
            merged.events += r.events
            merged.latencies += r.latencies
            merged.committed_at = r.committed_at
        return merged

    def _reject(self, m: Message, exc: BaseException) -> BatchResult:
        """A single message that cannot be stored: dead-letter it so the stream moves on."""
        if isinstance(exc, psycopg.Error):
            reason = f"database rejected: {str(exc).splitlines()[0][:300]}"
        else:
            reason = f"could not be stored: {type(exc).__name__}: {str(exc)[:300]}"
        log.warning("dead-lettering one message on %s: %s", m.topic, reason)
        while True:
            self._db()
            assert self.conn is not None
            try:
                self.conn.execute(
                    "INSERT INTO dead_letters (topic, payload, reason) VALUES (%s, %s, %s)",
                    (m.topic, m.payload[: self.settings.max_payload_bytes], reason),
                )
                self.conn.commit()
                break
            except TRANSIENT:
                self._drop_db()
                if self._stop.is_set():
                    raise
                time.sleep(0.1)
        res = BatchResult(committed_at=time.time())
        res.counts["dead_letters"] = 1
        return res

    # ------------------------------------------------------------------ housekeeping
    def _sweeper(self) -> None:
        """Mark silent devices offline every sweep_s, on its own connection and thread: the
        search is a scan of every online device (~20 ms at 100,000, ten times that at a
        province's million) that the batch loop must not wait for. Rows a batch is writing
        are skipped (SKIP LOCKED), not waited for; a wave of SWEEP_LIMIT is followed at once."""
        conn: psycopg.Connection | None = None
        delay = self.cfg.sweep_s
        while not self._stop.wait(delay):
            delay = self.cfg.sweep_s
            try:
                if conn is None or conn.closed:
                    conn = connect(autocommit=False, options="-c jit=off")
                gone = presence.sweep(
                    conn, self.cfg.missed_heartbeats, self.cfg.missed_heartbeats_by_kind
                )
                if gone:
                    emit_events(
                        conn, [("device.status", t.region_code, t.event_payload()) for t in gone]
                    )
                conn.commit()
                if gone:
                    log.info("%d device(s) went offline (missed heartbeats)", len(gone))
                if len(gone) >= SWEEP_LIMIT:
                    delay = 0.05
            except TRANSIENT:
                conn = None
            except psycopg.Error as exc:
                log.error("offline sweep failed: %s", exc)
                if conn is not None and not conn.closed:
                    conn.rollback()
            except Exception:  # noqa: BLE001 - retried next round; never kill the worker
                log.exception("offline sweep failed")
        if conn is not None:
            conn.close()

    def _compact_tally(self) -> None:
        """Every TALLY_COMPACT_S, fold alarm_tally's deltas (one row per statement that changed
        alarms) into one row per region, state and severity (alarm_tally_compact(), migration
        0016), so the alarm list's counts sum a few rows per region; on its own connection and
        thread, so no batch waits for it. With several workers, one compacts at a time."""
        conn: psycopg.Connection | None = None
        while not self._stop.wait(TALLY_COMPACT_S):
            try:
                if conn is None or conn.closed:
                    conn = connect(autocommit=True, options="-c jit=off")
                conn.execute("SELECT alarm_tally_compact()")
            except TRANSIENT:
                conn = None
            except Exception:  # noqa: BLE001 - retried next round; never kill the worker
                log.exception("alarm tally compaction failed")
        if conn is not None:
            conn.close()

    def _housekeeping(self) -> None:
        """Off the batch loop, on its own connection: reload the registered-device cache every
        KNOWN_REFRESH_S, paced (the batch loop then never waits for the ~100,000-row query; it
        asks only for ids it has not seen), and every hour make sure the coming months' position
        partitions exist and prune hub events past their retention, in small transactions (at
        30,000 msg/s an hour of position events is ~27 million rows: one DELETE of them in the
        batch loop would stop ingest for minutes)."""
        next_hourly = time.monotonic() + HOUSEKEEPING_S
        while not self._stop.wait(KNOWN_REFRESH_S):
            try:
                with connect(autocommit=True, options="-c jit=off") as conn:
                    store = self.store
                    if store is not None:
                        store.refresh_known(conn, page=5000, pause_s=0.005)
                    self._prune_refused(conn)
                    if time.monotonic() >= next_hourly:
                        next_hourly = time.monotonic() + HOUSEKEEPING_S
                        ensure_partitions(conn)
                        gone = prune_events(
                            conn, self.cfg.event_retention_h, pause_s=0.05, stop=self._stop
                        )
                        if gone:
                            log.info(
                                "pruned %d hub events older than %.0f h",
                                gone,
                                self.cfg.event_retention_h,
                            )
            except TRANSIENT:
                continue
            except Exception:  # noqa: BLE001 - retried at the next round; never kill the worker
                log.exception("housekeeping failed")

    def _prune_refused(self, conn: psycopg.Connection) -> None:
        """Dead letters past their age or the size cap, and pending devices past their age
        (every housekeeping round, so a flood of refused input is bounded within minutes)."""
        cfg = self.cfg
        gone = prune_dead_letters(
            conn,
            cfg.deadletter_retention_h,
            cfg.deadletter_max_bytes,
            pause_s=0.05,
            stop=self._stop,
        )
        stale = prune_pending(conn, cfg.pending_ttl_h)
        if gone or stale:
            log.info("pruned %d dead letters and %d pending devices", gone, stale)
        if self.store is not None and self.store.fair is not None:
            for key, (left, dropped, why) in self.store.fair.quarantined().items():
                log.warning(
                    "%s quarantined for %.0f s more, %d messages dropped (%s)",
                    key,
                    left,
                    dropped,
                    why,
                )

    # ------------------------------------------------------------------ event relay
    def _relay(self) -> None:
        """Publish every committed hub event (from any writer) on gw/v1/hub/events, QoS 0.

        One worker holds the relay lock; the others stand by, so each event goes out once."""
        while not self._stop.is_set():
            try:
                with connect(autocommit=True) as conn:
                    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK,)).fetchone()
                    if not got or not got[0]:
                        self._stop.wait(5.0)
                        continue
                    conn.execute("LISTEN gw_events")
                    log.info("relaying hub events to %s", HUB_EVENTS_TOPIC)
                    while not self._stop.is_set():
                        ids = [int(n.payload) for n in conn.notifies(timeout=0.5, stop_after=500)]
                        if not ids:
                            continue
                        self.client.publish_many(HUB_EVENTS_TOPIC, event_messages_by_id(conn, ids))
            except TRANSIENT:
                self._stop.wait(1.0)
            except Exception:  # noqa: BLE001 - the relay must never take the worker down
                log.exception("event relay error")
                self._stop.wait(1.0)

    # ------------------------------------------------------------------ main loop
    def stop(self, *_: object) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def run(self, max_seconds: float | None = None) -> None:
        """Run until stopped (or for max_seconds). Acks every message only after its commit."""
        self._db()
        self._connect()
        if self.cfg.publish_events:
            threading.Thread(target=self._relay, name="event-relay", daemon=True).start()
        threading.Thread(target=self._housekeeping, name="housekeeping", daemon=True).start()
        threading.Thread(target=self._sweeper, name="offline-sweep", daemon=True).start()
        threading.Thread(target=self._compact_tally, name="tally-compact", daemon=True).start()
        threading.Thread(
            target=run_provisioner, args=(self._stop, self.settings), name="provision", daemon=True
        ).start()
        gate = None
        if self.cfg.fair_share and self.cfg.broker_quarantine and self.settings.local_mqtt:
            gate = self._gate = BrokerGate(self.settings).start()
        started = time.monotonic()
        batch_s = self.cfg.batch_ms / 1000.0
        try:
            while not self._stop.is_set():
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
                with self._cond:
                    if not self._inbox:
                        self._cond.wait(timeout=batch_s)
                    if (
                        self._inbox
                        and len(self._inbox) < self.cfg.batch_max
                        and self._inbox_bytes < self.cfg.batch_max_bytes
                    ):
                        first = self._inbox[0].received
                        wait = first + batch_s - time.time()
                        if wait > 0:
                            self._cond.wait(timeout=wait)
                    batch = self._take_batch() if self._inbox else []
                    drops, self._dropped_acks = self._dropped_acks, []
                    dropped, self._dropped = self._dropped, 0
                if drops or dropped:
                    epoch = self._epoch
                    self.client.ack_many(mid for mid, e in drops if e == epoch)
                    self.stats.counts["dropped"] = self.stats.counts.get("dropped", 0) + dropped
                if batch:
                    res = self.persist(batch)
                    epoch = self._epoch
                    self.client.ack_many(m.mid for m in batch if m.qos and m.epoch == epoch)
                    self.stats.add(res)
                    fair = self.store.fair if self.store is not None else None
                    if fair is not None and fair.active is not self._fair_seen:
                        self._quarantined(fair.active)  # quarantines that ended
        finally:
            self._stop.set()
            if gate is not None:
                gate.stop()
                self._gate = None
            self._drain()
            props = None
            if self.cfg.discard_session_on_exit:
                props = Properties(PacketTypes.DISCONNECT)
                props.SessionExpiryInterval = 0
            self.client.disconnect(properties=props)
            self.client.loop_stop()
            self._drop_db()
            self.write_stats()

    def _drain(self) -> None:
        """On a clean stop, store and acknowledge what has arrived instead of leaving it to a
        redelivery. When the session is to be discarded, stop the subscription first and wait
        for the messages already in flight, so ending the session loses none of them."""
        if self.cfg.discard_session_on_exit and self._connected.is_set():
            self.client.unsubscribe(subscriptions(self.share_group))
            quiet_since = time.monotonic()
            seen = -1
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.5:
                with self._cond:
                    n = len(self._inbox)
                if n != seen:
                    seen, quiet_since = n, time.monotonic()
                time.sleep(0.05)
        acked = False
        while True:
            with self._cond:
                batch = self._take_batch() if self._inbox else []
            if not batch:
                break
            try:
                res = self.persist(batch)
            except Exception:  # noqa: BLE001 - unacked: redelivered to the next start
                log.warning("%d message(s) left unacknowledged at stop", len(batch))
                break
            epoch = self._epoch
            self.client.ack_many(m.mid for m in batch if m.qos and m.epoch == epoch)
            self.stats.add(res)
            acked = True
        if acked:
            time.sleep(0.1)  # let the network thread write the acks before the DISCONNECT

    def write_stats(self) -> None:
        if self.stats_file is None:
            return
        data = {
            "pid": os.getpid(),
            "client_id": self.cfg.client_id,
            "at": datetime.now(UTC).isoformat(),
            "batches": self.stats.batches,
            "db_retries": self.stats.db_retries,
            "counts": self.stats.counts,
            "latencies": self.stats.latencies,
            "batch_log": self.stats.batch_log,
        }
        tmp = self.stats_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.stats_file)


def run_worker(
    stats_file: Path | None = None,
    max_seconds: float | None = None,
    cfg: IngestSettings | None = None,
) -> IngestWorker:
    """Run a worker in this process with SIGTERM/SIGINT stopping it cleanly."""
    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    worker = IngestWorker(cfg=cfg, stats_file=stats_file)
    # `kill -USR1 <pid>` prints every thread's stack to stderr: how to see where a stuck
    # worker is without a debugger.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run(max_seconds=max_seconds)
    return worker


if __name__ == "__main__":
    run_worker()
