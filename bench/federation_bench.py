"""Federation benchmark: city-level lag (county commit -> visible at the city) and catch-up after an
outage, for one county feeding one city by logical replication, with a same-run baseline.

    .venv/bin/python -m bench.federation_bench [--rate 2000,10000] [--seconds 20] [--writers 4]
                                               [--outage-s 30] [--outage-rate R]
                                               [--events 500] [--event-rate 50]

Two hubs of its own (each its own PostGIS cluster under .gridwatch/bench-federation, free ports),
started and stopped here. The county's write stream is `--rate` row changes per second into the
published tables, shared by `--writers` processes (each its own session and devices) in 20 ms
transactions: half device presence updates (last_seen), a quarter new alarms, a quarter alarm
trail rows, plus one probe alarm per transaction whose commit time is recorded. A poller sees a
probe at the city (lag) and, as the baseline, at the county itself (the same poller's floor:
commit -> visible to another session there); one lag phase per rate given. Catch-up: the city
pauses its subscription, the county writes at --outage-rate (default: the last --rate) for
--outage-s seconds, the city resumes; backlog rows / seconds until the city has them all, beside
the county's own write rate.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg

from federation.replication import JoinPlan, join, libpq_url, set_enabled, status

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".gridwatch" / "bench-federation"
SCOPE = "360121"
DEVICES = 2000
TICK = 0.02


def as_hub(settings: Any) -> AbstractContextManager[None]:
    """This hub's GRIDWATCH_* while code reads the process's settings (migrate)."""
    from tests.support import settings_env

    return settings_env(
        {
            "GRIDWATCH_HOME": str(settings.home),
            "GRIDWATCH_PG_PORT": str(settings.pg_port),
            "GRIDWATCH_MQTT_PORT": str(settings.mqtt_port),
            "GRIDWATCH_DB_NAME": "gridwatch",
        }
    )


def start_hub(name: str) -> Any:
    from gridwatch.db import migrate
    from gridwatch.ports import free_local_port
    from gridwatch.services import LocalPostgres
    from gridwatch.settings import Settings

    home = HOME / name
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(
        home=home, pg_port=free_local_port(), mqtt_port=free_local_port(), db_name="gridwatch"
    )
    LocalPostgres(settings).start()
    with as_hub(settings):
        migrate(settings.db_url())
    return settings


def url(settings: Any) -> str:
    return libpq_url(settings.db_url(role="admin"))


def seed(county: str) -> list[str]:
    ids = [f"{SCOPE}0000132{i:07d}" for i in range(DEVICES)]
    with psycopg.connect(county, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO regions (code, level, name) VALUES (%s, 3, 'county')", (SCOPE + "000000",)
        )
        conn.execute(
            "INSERT INTO devices (id, type_code, kind, region_code, status, last_seen) "
            "SELECT unnest(%s::text[]), '132', 'camera', %s, 'online', now()",
            (ids, SCOPE + "000000"),
        )
    return ids


class Writer(threading.Thread):
    """The county's write stream: `rate` row changes/s in TICK transactions, one probe each."""

    def __init__(
        self, county: str, ids: list[str], rate: float, tag: str, paced: bool = True
    ) -> None:
        super().__init__(daemon=True)
        self.tag = tag
        self.conn = psycopg.connect(county)
        self.ids, self.rate, self.paced = ids, rate, paced
        self.stop = threading.Event()
        self.committed: dict[str, float] = {}
        self.rows = 0
        self.seq = 0
        self.started = self.ended = 0.0

    def run(self) -> None:
        per_tick = max(4, int(self.rate * TICK))
        n_dev, n_alarm = per_tick // 2, per_tick // 4
        self.started = time.monotonic()
        next_at = time.perf_counter()
        k = 0
        while not self.stop.is_set():
            k += 1
            probe = f"probe-{self.tag}-{k}"
            lo = (k * n_dev) % len(self.ids)
            batch = (self.ids * 2)[lo : lo + n_dev]
            with self.conn.transaction():
                self.conn.execute(
                    "UPDATE devices SET last_seen = now() WHERE id = ANY(%s)", (batch,)
                )
                self.conn.execute(
                    """
                    WITH a AS (
                        INSERT INTO alarms (device_id, msg_id, kind, severity, raised_at,
                                            last_raised_at)
                        SELECT %s, %s || '-' || g, 'intrusion', 2, now(), now()
                        FROM generate_series(1, %s) g RETURNING id
                    )
                    INSERT INTO alarm_events (alarm_id, state, actor)
                    SELECT id, 'new', 'bench' FROM a
                    """,
                    (self.ids[k % len(self.ids)], f"load-{self.tag}-{k}", n_alarm),
                )
                self.conn.execute(
                    "INSERT INTO alarms (device_id, msg_id, kind, severity, raised_at, "
                    "last_raised_at) VALUES (%s, %s, 'probe', 1, now(), now())",
                    (self.ids[0], probe),
                )
            self.committed[probe] = time.perf_counter()
            self.rows += n_dev + 2 * n_alarm + 1
            if self.paced:
                next_at += TICK
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        self.ended = time.monotonic()
        self.conn.close()


def _write_process(
    county: str, ids: list[str], rate: float, tag: str, paced: bool, stop: Any, out: Any
) -> None:
    """One writer process (a Writer run in the foreground until `stop`); its figures to `out`."""
    writer = Writer(county, ids, rate, tag, paced)
    writer.stop = stop
    out.put("ready")  # connected: the phase's clock starts when every writer is
    writer.run()
    out.put((writer.committed, writer.rows, writer.started, writer.ended))


class Writers:
    """`n` writer processes sharing `rate` (each its own session and devices), so neither one
    session nor the GIL limits the write stream. Commit times are perf_counter values, a
    system-wide monotonic clock on Linux, comparable with the pollers' in this process."""

    def __init__(
        self, county: str, ids: list[str], rate: float, tag: str, n: int, paced: bool = True
    ) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.stop, self.out = ctx.Event(), ctx.Queue()
        self.procs = [
            ctx.Process(
                target=_write_process,
                args=(county, ids[i::n], rate / n, f"{tag}{i}", paced, self.stop, self.out),
                daemon=True,
            )
            for i in range(n)
        ]
        self.committed: dict[str, float] = {}
        self.rows = 0
        self.started = self.ended = 0.0

    def start(self) -> None:
        for p in self.procs:
            p.start()
        for _ in self.procs:
            self.out.get(timeout=120)

    def join(self) -> None:
        """Stop them; their probes' commit times and rows, and the span they wrote in."""
        self.stop.set()
        got = [self.out.get(timeout=120) for _ in self.procs]
        for p in self.procs:
            p.join(30)
        for committed, rows, _, _ in got:
            self.committed.update(committed)
            self.rows += rows
        self.started = min(g[2] for g in got)
        self.ended = max(g[3] for g in got)


class Poller(threading.Thread):
    """Sees probe alarms appear at one hub; when each was first seen. Several writers commit out
    of id order, each its own in order: every writer's probes (its own device) are read from
    past the last one seen of the writer furthest behind, so none is skipped."""

    def __init__(self, dsn: str, devices: list[str], start_id: int) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.stop = threading.Event()
        self.seen: dict[str, float] = {}
        self.last = dict.fromkeys(devices, start_id)

    def run(self) -> None:
        while not self.stop.is_set():
            rows = self.conn.execute(
                "SELECT id, msg_id, device_id FROM alarms WHERE kind = 'probe' AND id > %s "
                "ORDER BY id",
                (min(self.last.values()),),
            ).fetchall()
            now = time.perf_counter()
            for rid, msg, dev in rows:
                self.seen.setdefault(msg, now)
                self.last[dev] = max(self.last.get(dev, 0), rid)
            time.sleep(0.005)
        self.conn.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lag_phase(
    county: str, city: str, ids: list[str], rate: float, seconds: float, writers: int
) -> dict:
    writer = Writers(county, ids, rate, f"lag{rate:.0f}-", writers)
    with psycopg.connect(county) as conn:
        got = conn.execute("SELECT coalesce(max(id), 0) FROM alarms").fetchone()
    start_id = int(got[0]) if got else 0
    at_city, at_county = (
        Poller(city, ids[:writers], start_id),
        Poller(county, ids[:writers], start_id),
    )
    for t in (at_city, at_county):
        t.start()
    writer.start()
    time.sleep(seconds)
    writer.join()
    stopped = time.monotonic()
    while time.monotonic() < stopped + 180 and any(m not in at_city.seen for m in writer.committed):
        time.sleep(0.1)
    for p in (at_city, at_county):
        p.stop.set()
        p.join()
    out: dict[str, Any] = {
        "behind_s_after_stop": time.monotonic() - stopped,
        "offered_rows_s": rate,
        "written_rows_s": writer.rows / (writer.ended - writer.started),
        "probes": len(writer.committed),
        "missing_at_city": sum(m not in at_city.seen for m in writer.committed),
    }
    for name, poller in (("city", at_city), ("county", at_county)):
        lags = [
            (poller.seen[m] - t) * 1000 for m, t in writer.committed.items() if m in poller.seen
        ]
        out[name] = (statistics.median(lags), pct(lags, 0.99), max(lags)) if lags else None
    return out


def count(dsn: str, origin: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM alarms WHERE origin = %s) "
            "+ (SELECT count(*) FROM alarm_events WHERE origin = %s)",
            (origin, origin),
        ).fetchone()
    return int(row[0]) if row else 0


def catch_up_phase(
    county: str, city: str, ids: list[str], outage_s: float, rate: float, writers: int
) -> dict:
    """The city's subscription paused while the county writes at `rate` for outage_s, then
    resumed: how fast the city applies the backlog (the county's writing stopped meanwhile)."""
    set_enabled(city, "county_a", False)
    before = count(county, "county_a")
    wal_before = wal_lsn(county)
    writer = Writers(county, ids, rate, "outage", writers)
    writer.start()
    time.sleep(outage_s)
    writer.join()
    wal_bytes = wal_lsn(county) - wal_before
    target = count(county, "county_a")
    backlog_rows = writer.rows
    # each writer commits in order and the city applies in commit order: once every writer's
    # last probe is there, so is everything before it (counted once at the end to be sure)
    last: dict[str, int] = {}
    for msg in writer.committed:
        tag, _, k = msg.rpartition("-")
        last[tag] = max(last.get(tag, 0), int(k))
    probes = [f"{tag}-{k}" for tag, k in last.items()]
    t0 = time.monotonic()
    set_enabled(city, "county_a", True)
    with psycopg.connect(city, autocommit=True) as conn:
        while True:
            got = conn.execute(
                "SELECT count(*) FROM alarms WHERE device_id = ANY(%s) AND msg_id = ANY(%s)",
                (ids[:writers], probes),
            ).fetchone()
            if got and got[0] == len(probes):
                break
            time.sleep(0.05)
    drain = time.monotonic() - t0
    return {
        "outage_s": outage_s,
        "backlog_rows": backlog_rows,
        "backlog_alarm_rows": target - before,
        "missing_at_city": target - count(city, "county_a"),
        "wal_bytes": wal_bytes,
        "county_write_rows_s": backlog_rows / (writer.ended - writer.started),
        "drain_s": drain,
        "catch_up_rows_s": backlog_rows / drain,
    }


def wal_lsn(dsn: str) -> int:
    """The hub's current WAL position in bytes."""
    from federation.replication import lsn_int

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    return lsn_int(row[0] if row else None) or 0


def bridge_phase(county_s: Any, city_s: Any, city: str, events: int, rate: float) -> dict:
    """Live events: county broker -> bridge -> city broker -> relay -> city bus (hub_events), each
    event's publish to its row seen at the city; baseline: the same events published straight
    onto the city's broker under the county's prefix (no bridge hop), with the bridge's account.
    Seen by polling the city's hub_events every 5 ms (as the lag phase's poller)."""
    import json
    import re

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from federation.bridge import set_up_bridge, up_topic
    from federation.relay import Relay
    from ingest.broker_acl import local_broker

    for settings in (city_s, county_s):
        local_broker(settings).start()
    conf = set_up_bridge(county_s, city_s, "county_a").read_text()
    fed_pw = re.search(r"remote_password (\S+)", conf).group(1)  # type: ignore[union-attr]
    relay = Relay(city_s, client_id="bench-relay")
    threading.Thread(target=relay.run, daemon=True).start()
    relay.ready.wait(20)
    listen = psycopg.connect(city, autocommit=True)

    def run(
        settings: Any, user: str, password: str, topic: str, first: int
    ) -> tuple[list[float], float]:
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{first}")
        pub.username_pw_set(user, password)
        pub.connect(*settings.mqtt_endpoint())
        pub.loop_start()
        time.sleep(1.0)
        sent: dict[int, float] = {}
        seen: dict[int, float] = {}
        done = threading.Event()

        start = listen.execute("SELECT coalesce(max(id), 0) FROM hub_events").fetchone()

        def watch() -> None:
            last = start[0] if start else 0
            while not done.is_set():
                for rid, origin_id in listen.execute(
                    "SELECT id, (payload->>'origin_event_id')::bigint FROM hub_events "
                    "WHERE id > %s ORDER BY id",
                    (last,),
                ).fetchall():
                    last = max(last, rid)
                    if origin_id is not None and first <= origin_id < first + events:
                        seen.setdefault(int(origin_id), time.perf_counter())
                if len(seen) >= events:
                    done.set()
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for k in range(first, first + events):
            body = {
                "id": k,
                "at": "2026-12-02T00:00:00+00:00",
                "kind": "alarm.new",
                "region_code": SCOPE + "000000",
                "payload": {"id": k},
            }
            sent[k] = time.perf_counter()
            pub.publish(topic, json.dumps(body), qos=1)
            time.sleep(1.0 / rate)
        done.wait(30)
        done.set()
        watcher.join(5)
        pub.loop_stop()
        pub.disconnect()
        span = max(seen.values(), default=0.0) - min(sent.values())
        per_s = len(seen) / span if seen and span > 0 else 0.0
        return [(seen[k] - t) * 1000 for k, t in sent.items() if k in seen], per_s

    user, password = county_s.hub_credentials("ingest")
    bridged, bridged_s = run(county_s, user, password, "gw/v1/hub/events", 1_000_000)
    direct, direct_s = run(city_s, "fed-county_a", fed_pw, up_topic("county_a"), 2_000_000)
    relay.stop()
    listen.close()
    return {
        "events": events,
        "bridged": bridged,
        "direct": direct,
        "per_s": {"bridged": bridged_s, "direct": direct_s},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rate",
        default="10000",
        help="row changes/s at the county; several, comma-separated, for a lag phase each",
    )
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--outage-s", type=float, default=30)
    ap.add_argument(
        "--outage-rate", type=float, default=0, help="row changes/s during the outage (--rate's)"
    )
    ap.add_argument("--writers", type=int, default=4, help="writer processes sharing a rate")
    ap.add_argument("--events", type=int, default=500, help="live events over the bridge")
    ap.add_argument("--event-rate", type=float, default=50, help="live events/s")
    args = ap.parse_args()
    from gridwatch.secrets import load_secrets
    from gridwatch.services import LocalPostgres

    hubs = []
    try:
        city_s = start_hub("city")
        hubs.append(city_s)
        county_s = start_hub("county_a")
        hubs.append(county_s)
        city, county = url(city_s), url(county_s)
        ids = seed(county)
        join(
            JoinPlan(
                hub_id="county_a",
                scope=SCOPE,
                upstream_url=city,
                local_url=county,
                advertise_host="127.0.0.1",
                advertise_port=county_s.pg_port,
                repl_password=load_secrets(county_s.home)["fed_repl_password"],
            )
        )
        while status(city, probe=False).members[0].state != "streaming":
            time.sleep(0.2)
        rates = [float(r) for r in args.rate.split(",")]
        for rate in rates:
            lag = lag_phase(county, city, ids, rate, args.seconds, args.writers)
            print(
                f"lag phase: offered {lag['offered_rows_s']:,.0f} row changes/s "
                f"({args.writers} writer processes), written {lag['written_rows_s']:,.0f}/s "
                f"for {args.seconds:.0f} s, {lag['probes']} probes, "
                f"{lag['missing_at_city']} missing at the city "
                f"(city had them all {lag['behind_s_after_stop']:.1f} s after the writers stopped)"
            )
            for name in ("county", "city"):
                p50, p99, mx = lag[name]
                print(
                    f"  visible at the {name:6s}: p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
                    f"max {mx:7.1f} ms"
                )
            print(f"  ratio city/county p50 {lag['city'][0] / lag['county'][0]:.1f}x")
        if args.events:
            br = bridge_phase(county_s, city_s, city, args.events, args.event_rate)
            for name in ("bridged", "direct"):
                lags = br[name]
                print(
                    f"live events {name:8s}: {len(lags)}/{br['events']} at the city's stream, "
                    f"p50 {statistics.median(lags):6.1f} ms  p99 {pct(lags, 0.99):6.1f} ms  "
                    f"max {max(lags):6.1f} ms; {br['per_s'][name]:,.0f} events/s into the bus"
                )
        cu = catch_up_phase(
            county, city, ids, args.outage_s, args.outage_rate or rates[-1], args.writers
        )
        print(
            f"catch-up: {cu['outage_s']:.0f} s outage, backlog {cu['backlog_rows']:,} row changes "
            f"(county wrote {cu['county_write_rows_s']:,.0f}/s); the city caught up in "
            f"{cu['drain_s']:.1f} s = {cu['catch_up_rows_s']:,.0f} row changes/s "
            f"({cu['catch_up_rows_s'] / cu['county_write_rows_s']:.2f}x the county's write rate); "
            f"{cu['missing_at_city']} rows missing at the city; the outage's WAL "
            f"{cu['wal_bytes'] / 1e6:,.0f} MB = {cu['wal_bytes'] / max(1, cu['backlog_rows']):,.0f} "
            "bytes per row change"
        )
    finally:
        from ingest.broker_acl import local_broker

        for settings in reversed(hubs):
            local_broker(settings).stop()
            LocalPostgres(settings).stop(mode="immediate")
        shutil.rmtree(HOME, ignore_errors=True)


if __name__ == "__main__":
    main()
