"""Bulk device registration for generators and imports: validate in Python, COPY, one INSERT ... SELECT."""

from __future__ import annotations

import gc
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Any

import numpy as np
from psycopg import Copy
from psycopg.copy import Writer
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from geo.coverage import DEFAULT_DORI, Coverage
from geo.device_rows import (
    GIVEN,
    binary_copy_types,
    bulk_temp_table_sql,
    bulk_upsert_sql,
    fov_ewkb_many,
    given_row,
    jsonb_binary,
)
from geo.registry import (
    Decoded,
    DeviceRegistration,
    RegistryError,
    _actor,
    _audit,
    _Tx,
    coverage_of,
    decode,
    notify_broker,
    validate_registration,
)
from geo.views import relink_devices
from geo.village_areas import area_village_sql
from hardware.sector import points_ewkb

log = logging.getLogger(__name__)

UNIQUE_VIOLATION = "23505"
# Rows per chunk: chunk n+1 is validated and drawn in a thread while chunk n is stored, so only
# the first chunk's preparation and the last chunk's storing run alone (at 5,000 rows, half of
# a 10,000-row import). Smaller chunks cost more statements and GIL hand-overs: at 1,000 rows
# ~0.1 CPU-s more per 10,000 rows in the client than at 5,000 (eight alternating runs each).
BATCH = 2_000
# The first chunk is prepared while the database has nothing to do: a small one starts it sooner.
# The chunks after it double up to BATCH: a row costs the client about half what it costs the
# database, so each is prepared in about the time the database stores the one before (a first
# chunk of 500 followed at once by 2,000 had the database wait ~20-30 ms for the second).
FIRST_CHUNK = 500
# Rows whose stored ids and village codes are looked up at once (a few chunks' worth: the
# look-ups are round trips on the database's path, which is the import's critical path).
LOOKUP_ROWS = 20_000
SWITCH_INTERVAL_S = 0.0005  # sys.setswitchinterval while chunks are prepared in the thread

_TEMP_DDL = bulk_temp_table_sql("_bulk_devices")
_COPY_COLUMNS = ", ".join((*GIVEN, "registration"))
# Binary COPY: EWKB and numbers go as they are, without the hex and decimal text the server
# would parse (COPY's share of the server's time fell by a third, the client's by half).
_COPY_SQL = f"COPY _bulk_devices ({_COPY_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = binary_copy_types()
_FIRST_SQL = f"SET LOCAL jit = off; {_TEMP_DDL}; TRUNCATE _bulk_devices"
_to_json = DeviceRegistration.__pydantic_serializer__.to_json

# Region: the village of its code, else the deepest active region whose boundary covers the
# point (an administrative village first), found among the small pieces of region_parts; the base
# grid containing it; where that region is no village, the approximate village area covering it.
# Raw SQL: one set-based PostGIS pass over the whole batch. OFFSET 0 keeps the inner query a
# subquery: flattened, its region lookup was copied into each of the approximate-village
# lookup's references and run twice per row.
_LOCATED_SQL = f"""
SELECT l.*, {area_village_sql("l.position", "l.region_code")} AS area_village_code FROM (
SELECT s.*,
  coalesce(
    (SELECT r.code FROM regions r WHERE r.code = s.village_code AND r.level = 5),
    (SELECT p.code FROM region_parts p WHERE p.geom && s.position
       AND ST_Covers(p.geom, s.position) ORDER BY p.level DESC, p.code LIMIT 1)) AS region_code,
  (SELECT g.id FROM grids g WHERE g.level = 3 AND g.geom && s.position
     AND ST_Covers(g.geom, s.position) ORDER BY g.id LIMIT 1) AS grid_id
FROM _bulk_devices s OFFSET 0) l
"""

_COUNTS = """
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated,
       count(*) FILTER (WHERE outside) AS outside
FROM ins
"""
_REGISTRATIONS_SQL = """
INSERT INTO device_registrations (device_id, registration, updated_at)
SELECT id, registration, now() FROM _bulk_devices
ON CONFLICT (device_id) DO UPDATE SET registration = EXCLUDED.registration, updated_at = now()
"""
_REGISTRATIONS_NEW_SQL = _REGISTRATIONS_SQL.split("ON CONFLICT")[0]
# The registrations go in by the same statement as the devices (a sibling data-modifying CTE):
# one round trip and one plan per chunk instead of two; their foreign key to devices is checked
# at the end of the statement, when the devices rows are there.
_INSERT_SQL = (
    f"WITH located AS ({_LOCATED_SQL}), ins AS ({bulk_upsert_sql('located')}), "
    f"reg AS ({_REGISTRATIONS_SQL}) {_COUNTS}"
)
# A chunk none of whose ids is stored (active or retired): plain INSERTs, without the
# speculative insertion and conflict check of every row (see _write).
_INSERT_NEW_SQL = (
    f"WITH located AS ({_LOCATED_SQL}), "
    f"ins AS ({bulk_upsert_sql('located', upsert=False)}), reg AS ({_REGISTRATIONS_NEW_SQL}) "
    f"{_COUNTS}"
)

# Rows equal to what is stored (same registration, device active) are left alone: an import
# run twice changes nothing. (prepare leaves such rows out already, comparing with the stored
# registrations of the chunk's ids; this runs only for a chunk where some were found.)
_UNCHANGED_SQL = """
DELETE FROM _bulk_devices b USING device_registrations r JOIN devices d ON d.id = r.device_id
WHERE r.device_id = b.id AND r.registration = b.registration AND d.retired_at IS NULL
RETURNING b.id
"""


@contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector paused for a bulk load, then as it was.

    A 10,000-row import allocates some 100,000 dicts, tuples and models, none of them in a
    reference cycle (reference counting frees them all), yet each 700 allocations start a
    collection, and the older generations' ones walk every object the process holds: 0.15-0.2
    CPU-s per 10,000 rows in a process with the API or the bench loaded (0.74 -> 0.57 CPU-s,
    1.23 -> 1.06 s wall, three alternations at load 0.7). The pause is process-wide: cycles
    other threads make meanwhile are collected once it ends."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextmanager
def step(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of a block to timings[name] (seconds)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of `size` items (the last may be shorter)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _ramp(first: int, size: int) -> Iterator[int]:
    """Chunk sizes: `first`, then doubling up to `size`, then `size` for ever."""
    n = max(1, min(first, size))
    while True:
        yield n
        n = min(size, 2 * n)


def _split(block: list[Any], sizes: Iterator[int]) -> Iterator[list[Any]]:
    """A block cut into chunks of the next sizes (shared across blocks; the last chunk of a
    block may be shorter)."""
    at = 0
    while at < len(block):
        n = next(sizes)
        yield block[at : at + n]
        at += n


_PRESETS_AT = GIVEN.index("presets")


def _row(
    reg: DeviceRegistration, d: Decoded, cov: Coverage, position: bytes | None, fov: bytes | None
) -> tuple:
    """One staging row for the binary COPY: the GIVEN columns in order (geometries as binary
    EWKB), then the registration as given (jsonb)."""
    row = given_row(d, cov, position=position, fov=fov)
    if row[_PRESETS_AT] is not None:
        at = _PRESETS_AT
        row = (*row[:at], jsonb_binary(json.dumps(row[at])), *row[at + 1 :])
    # model_dump_json's bytes, without decoding them to str and encoding them again
    return (*row, jsonb_binary(_to_json(reg, exclude_none=True)))


@paused_gc()  # a new pause per call (contextmanager objects decorate)
def register_many(
    conn: Connection,
    regs: Iterable[DeviceRegistration | Mapping[str, Any]],
    actor: str,
    *,
    level: str = DEFAULT_DORI,
    batch: int = BATCH,
    skip_invalid: bool = False,
    reload_broker: bool = True,
    refresh_compliance: bool = True,
    skip_unchanged: bool = False,
    dry_run: bool = False,
    timings: dict[str, float] | None = None,
    before_store: Callable[[], None] | None = None,
) -> dict:
    """Register many devices at once (new ids inserted, known ids updated and un-retired).

    The FOV of each camera comes from the same hardware optics and sector functions as a single
    registration; rows go in by COPY and one INSERT ... SELECT per batch, which also locates each
    device (administrative village, else the deepest region; base grid). One audit_log row
    records the batch. With skip_invalid, bad rows are reported (index, id, field, reason)
    instead of raising RegistryError. With skip_unchanged, rows equal to the stored registration
    are counted as `unchanged` and not written; with dry_run everything is checked and counted,
    then rolled back (the caller's transaction is left as it was, by a savepoint). `timings`,
    when given, receives the seconds spent per step. `before_store`, when given, is called once
    before anything is stored (while the first chunk is prepared; a check that may refuse the
    whole batch by raising).
    """
    actor = _actor(actor)
    totals: dict[str, Any] = {
        "inserted": 0,
        "updated": 0,
        "outside": 0,
        "unchanged": 0,
        "rejected": [],
    }
    tm = timings if timings is not None else {}
    known_villages: dict[str, bool] = {}
    seen: set[str] = set()
    counter = [0]  # the index of the next input row
    same = [0]  # rows found equal to the stored registration by prepare (its thread's count)
    staged = [False]  # the staging table holds a chunk already stored (TRUNCATE it first)
    # a cursor of the connection that only lends psycopg's dumpers to the thread formatting the
    # COPY data: no statement runs on it
    driver = conn.connection.driver_connection  # the psycopg connection (for COPY)
    assert driver is not None, "register_many needs an open connection"
    formatting = driver.cursor()

    def prepare(chunk: list, stored: dict[str, dict]) -> bytes:
        """Validate a chunk and build its staging rows as binary COPY data (FOVs drawn for the
        whole chunk); pure CPU on data already fetched, so it runs beside the database work of
        the chunk before."""
        todo: list[tuple[DeviceRegistration, Decoded, Coverage]] = []
        with step(tm, "validate"):
            for raw in chunk:
                index = counter[0]
                counter[0] += 1
                try:
                    reg = validate_registration(raw)
                    if reg.id in seen:
                        raise RegistryError("id", f"{reg.id} appears twice in this batch")
                    # every code of the chunk was looked up before (_known_villages)
                    if reg.village_code and not known_villages.get(reg.village_code, False):
                        raise RegistryError(
                            "village_code",
                            f"{reg.village_code} is not an imported, not retired "
                            "village-level unit",
                        )
                    seen.add(reg.id)
                    if stored and stored.get(reg.id) == json.loads(
                        reg.model_dump_json(exclude_none=True)
                    ):
                        same[0] += 1  # equal to what is stored: no FOV, no write
                        continue
                    d = decode(reg)
                    todo.append((reg, d, coverage_of(d, level, draw=False)))
                except RegistryError as exc:
                    if not skip_invalid:
                        raise RegistryError(exc.field, f"row {index}: {exc.reason}") from None
                    rid = _field(raw, "id")
                    totals["rejected"].append(
                        {"index": index, "id": rid, "field": exc.field, "reason": exc.reason}
                    )
        if not todo:
            return b""
        with step(tm, "fov"):
            # every sector of the chunk in one call, written as EWKB without a geometry each
            fovs = fov_ewkb_many([cov for _, _, cov in todo])
            positions = points_ewkb(
                np.fromiter((d.lon for _, d, _ in todo), float, len(todo)),
                np.fromiter((d.lat for _, d, _ in todo), float, len(todo)),
            )
        with step(tm, "staging rows"):
            rows = [
                _row(*item, pos, fov) for item, pos, fov in zip(todo, positions, fovs, strict=True)
            ]
            return _copy_data(formatting, rows)

    def store(data: bytes, any_stored: bool, known: bool) -> None:
        """COPY one chunk's rows (binary COPY data) into the staging table and upsert them; with
        `any_stored` false none of the chunk's ids has an active stored registration, with
        `known` false none of them is stored at all."""
        with step(tm, "copy"):
            with driver.cursor() as cur:
                if staged[0]:
                    cur.execute("TRUNCATE _bulk_devices")
                staged[0] = True
                with cur.copy(_COPY_SQL) as copy:
                    copy.write(data)  # the whole format: signature, rows, trailer
        if skip_unchanged and any_stored:
            with step(tm, "unchanged"):
                totals["unchanged"] += len(conn.execute(text(_UNCHANGED_SQL)).all())
        save = conn.begin_nested() if dry_run else None
        counts = _write(conn, actor, fresh=not known, timings=tm)
        if links:  # without intersections there is no link to drop or make
            with step(tm, "relink"):
                relink_devices(conn, from_table="_bulk_devices")
        totals["inserted"] += counts.inserted
        totals["updated"] += counts.updated
        totals["outside"] += counts.outside
        if save is not None:
            save.rollback()

    with _Tx(conn) as tx:
        links = conn.execute(text("SELECT EXISTS (SELECT FROM intersections)")).scalar()
        switch = sys.getswitchinterval()
        # Each statement's result has to wait for the GIL, which the busy thread gives up every
        # switch interval (5 ms by default): ~10 ms more per round trip measured, a second per
        # 10,000 rows in chunks of 1,000. Handed over ten times as often while it runs.
        sys.setswitchinterval(min(switch, SWITCH_INTERVAL_S))
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="register-many") as pool:
                # Chunk n+1 is validated and drawn in a thread while the database stores chunk
                # n: the connection waits on the server without the GIL, so client and server
                # work overlap. The thread never touches the connection: what it needs is
                # looked up before.
                pending: tuple[Future[bytes], bool, bool] | None = None
                sizes = _ramp(FIRST_CHUNK, batch)
                for n, block in enumerate(_chunks(regs, LOOKUP_ROWS)):
                    # the stored ids (and registrations) and the village codes of many chunks
                    # in one query each: two round trips on the database's path per block,
                    # not per chunk
                    with step(tm, "lookups"):
                        stored_block, known_ids = _stored(conn, block, skip_unchanged)
                        _known_villages(conn, block, known_villages)
                    for chunk in _split(block, sizes):
                        ids = _ids(chunk)
                        stored = {i: stored_block[i] for i in ids if i in stored_block}
                        known = not known_ids.isdisjoint(ids)
                        job = (pool.submit(prepare, chunk, stored), bool(stored), known)
                        if pending is None and n == 0:
                            # while the first chunk is prepared, the database makes the staging
                            # table (empty: TRUNCATE when an earlier call of this transaction
                            # made it) and turns JIT off (compiling the INSERT took longer than
                            # running it); one round trip, the simple query protocol taking
                            # several statements
                            with step(tm, "copy"), driver.cursor() as cur:
                                cur.execute(_FIRST_SQL)
                            if before_store is not None:
                                with step(tm, "checks"):
                                    before_store()
                                before_store = None
                        if pending is not None and (data := pending[0].result()):
                            store(data, *pending[1:])
                        pending = job
                if pending is not None and (data := pending[0].result()):
                    store(data, *pending[1:])
                if before_store is not None:  # no rows
                    with step(tm, "checks"):
                        before_store()
        finally:
            sys.setswitchinterval(switch)
            formatting.close()
        totals["unchanged"] += same[0]
        total = 0 if dry_run else totals["inserted"] + totals["updated"]
        if total >= 1000 and _worth_analyzing(conn, total, totals["inserted"]):
            # The planner's picture of the fleet changes with a big import; autovacuum analyzes
            # devices rarely (migration 0008: presence writes would trigger it every minute).
            with step(tm, "analyze"):
                conn.execute(text(ANALYZE_SQL))
        if total:
            _audit(
                conn,
                actor,
                "device.bulk_register",
                None,
                {k: (len(v) if isinstance(v, list) else v) for k, v in totals.items()},
            )
            if refresh_compliance:
                with step(tm, "compliance"):
                    _refresh_all(conn)
    if reload_broker and total:
        # the provisioner (ingest.provision) reconciles every device once this commits: in a
        # short transaction of its own when the batch had one, else in the caller's
        if tx.owned:
            with conn.begin():
                notify_broker(conn, ["*"])
        else:
            notify_broker(conn, ["*"])
    totals["devices"] = total
    return totals


# An import that wrote less than this share of the rows the last ANALYZE counted, and after
# which the table holds about as many rows as that ANALYZE counted, leaves the planner's picture
# of the fleet as it was (a 10,000-camera import into a million-camera fleet would otherwise pay
# for sampling 30,000 rows of it). The count compares the statistics' live rows, so successive
# small imports that together grew the fleet by that share do analyze.
ANALYZE_SHARE = 0.1

# The devices columns whose statistics the planner uses: those the hub's queries filter, join,
# group or sort devices by (api lists, boxes, KPIs and tiles; geo audit, compliance, views and
# gaps; ingest presence and positions; gb28181, vision, federation, simulators). An import's
# ANALYZE samples only these; the other 23 columns are shown, never compared, and keep the
# statistics the last full ANALYZE gave them (last_position is compared only inside
# coalesce(last_position, position), whose estimate no column's statistics give).
PLANNER_COLUMNS = (
    "id",
    "kind",
    "sub_kind",
    "name",
    "status",
    "networked",
    "position",
    "fov",
    "region_code",
    "grid_id",
    "village_code",
    "area_village_code",
    "retired_at",
    "registered_at",
    "registered_by",
    "last_seen",
    "last_position_at",
    "heartbeat_s",
    "origin",
)
ANALYZE_SQL = f"ANALYZE devices ({', '.join(PLANNER_COLUMNS)})"


def analyze_needed(written: int, inserted: int, counted: float, live: int) -> bool:
    """Whether writing `written` devices rows (`inserted` of them new) changes the table enough
    to ANALYZE it: `counted` rows at its last ANALYZE (negative: never analyzed), `live` rows
    by the statistics collector before this write."""
    if counted < 0:
        return True
    limit = ANALYZE_SHARE * counted
    return written >= limit or abs(live + inserted - counted) >= limit


def _worth_analyzing(conn: Connection, written: int, inserted: int) -> bool:
    """analyze_needed for devices as the catalogue and the statistics collector see it now."""
    counted, live = conn.execute(
        text(
            "SELECT c.reltuples, coalesce(s.n_live_tup, 0) FROM pg_class c "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = 'devices'::regclass"
        )
    ).one()
    return analyze_needed(written, inserted, counted, live)


class _Collect(Writer):
    """Where psycopg's Copy writes the data it formats, instead of a connection."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Any) -> None:
        self.parts.append(bytes(data))


def _copy_data(cursor: Any, rows: list[tuple]) -> bytes:
    """Rows as binary COPY data for the staging table (signature, rows, trailer), formatted by
    psycopg's dumpers as `copy.write_row` would send them, without the connection: the thread
    preparing a chunk formats it while the main thread waits on the database (its write_row
    loop had held the GIL ~8 us per row beside the thread)."""
    out = _Collect()
    with Copy(cursor, binary=True, writer=out) as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)
    return b"".join(out.parts)


# A chunk's ids joined to devices, not `id = ANY(:ids)`: once psycopg prepares the statement
# (its sixth run) PostgreSQL may switch to a generic plan, where ANY over a parameter is a linear
# search of the array per row; with devices' statistics from before the import (a first import
# into an empty fleet) that plan is a sequential scan, so each chunk's look-up compared every
# row stored so far with each of its 2,000 ids (0.35-0.85 s of PostgreSQL per chunk by the
# 10,000th row of an import, quadratic in the import's size).
# The ids go as one comma-separated text, split by the server: as a list, psycopg's array
# dumper ran a regular expression over every element to quote it, ~15 ms of the client per
# 10,000 ids, before the first chunk could be prepared. An id with a comma in it (refused by
# validation anyway) is looked up as its pieces, which only ever find nothing or a stored id
# that is looked for by itself.
_IDS_JOIN = (
    "unnest(string_to_array(CAST(:ids AS text), ',')) AS u(id) "
    "JOIN devices d ON d.id = CAST(u.id AS char(20))"
)


def _field(r: Any, name: str, missing: Any = None) -> Any:
    """A field of a registration given as a mapping (None when absent) or a model (`missing`)."""
    # a dict is told by its type first: isinstance against the Mapping ABC costs ~0.25 us a row
    if type(r) is dict or isinstance(r, Mapping):
        return r.get(name)
    return getattr(r, name, missing)


def _ids(rows: list) -> list[str]:
    """The ids of registrations (mappings or models), as looked up (stripped strings)."""
    return [str(_field(r, "id", "")).strip() for r in rows]


def _stored(conn: Connection, rows: list, registrations: bool) -> tuple[dict[str, dict], set[str]]:
    """Which of these registrations' ids are stored (active or retired), and with
    `registrations` the stored registrations of the active devices among them (id ->
    registration)."""
    ids = _ids(rows)
    if not registrations:
        found = conn.execute(
            text(f"SELECT d.id FROM {_IDS_JOIN}"), {"ids": ",".join(ids)}
        ).scalars()
        return {}, set(found)
    got = conn.execute(
        text(
            f"SELECT d.id, r.registration FROM {_IDS_JOIN} LEFT JOIN device_registrations r "
            "ON r.device_id = d.id AND d.retired_at IS NULL"
        ),
        {"ids": ",".join(ids)},
    ).all()
    return {r.id: r.registration for r in got if r.registration is not None}, {r.id for r in got}


def _write(conn: Connection, actor: str, *, fresh: bool, timings: dict[str, float]) -> Any:
    """Write the staged chunk into devices and device_registrations (one statement); its
    counts (inserted, updated, outside). A `fresh` chunk (none of its ids was stored when it was looked up) goes
    in by plain INSERTs in a savepoint; should another transaction have stored one of its ids
    since, the unique violation rolls the savepoint back and the chunk is upserted after all."""
    if fresh:
        try:
            with conn.begin_nested():
                with step(timings, "insert"):
                    counts = conn.execute(text(_INSERT_NEW_SQL), {"actor": actor}).one()
            return counts
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
            log.info("an id of the chunk was stored meanwhile: upserting it")
    with step(timings, "insert"):
        return conn.execute(text(_INSERT_SQL), {"actor": actor}).one()


def _known_villages(conn: Connection, chunk: list, cache: dict[str, bool]) -> None:
    """Look up every village code of a chunk in one query (into `cache`: code -> imported and not retired)."""
    codes = set()
    for r in chunk:
        code = _field(r, "village_code")
        if isinstance(code, bytes):
            code = code.decode("utf-8", "replace")
        if isinstance(code, str):
            code = code.strip()  # as DeviceRegistration strips it
            if len(code) == 12 and code.isdigit() and code not in cache:
                codes.add(code)
    if not codes:
        return
    found = conn.execute(
        text(
            "SELECT code FROM regions WHERE code = ANY(CAST(:codes AS char(12)[])) "
            "AND level = 5 AND retired_at IS NULL"
        ),
        {"codes": sorted(codes)},
    ).scalars()
    cache.update(dict.fromkeys(codes, False))
    cache.update(dict.fromkeys(found, True))


def _refresh_all(conn: Connection) -> None:
    try:
        from geo.live import refresh_all
    except ImportError:
        return
    refresh_all(conn)
