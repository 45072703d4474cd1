"""The alarm list's counts come from alarm_tally (migration 0016): equal to counting the alarms."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from api.routers.alarms import tallied
from api.scope import region_prefix
from ingest import alarms as lifecycle
from ingest.alarms import AlarmIn, store_alarms
from tests.api.fixtures import COUNTY_A, COUNTY_B, TOWN_A, VILLAGE_A1, VILLAGE_B1, device_id

pytestmark = pytest.mark.integration

# the listings compared: (region, filters); None region = the operator's whole hub
LISTINGS = [
    (None, {}),
    (None, {"state": "open"}),
    (None, {"state": ["closed", "new"]}),
    (None, {"severity_max": 2}),
    (COUNTY_A, {"state": "open", "severity": [1, 3]}),
    (TOWN_A, {}),
    (VILLAGE_A1, {"state": "acknowledged"}),
    (COUNTY_B, {"state": "open", "severity_max": 1}),
]
STATES = {"open": ("new", "acknowledged", "dispatched"), "closed": ("resolved", "false_alarm")}


def _by_count(engine, region: str | None, filters: dict) -> dict:
    """The counts and open total of a listing counted on alarms itself (COUNT(*))."""
    where, values = ["TRUE"], {}
    if region:
        where.append("region_code LIKE :prefix")
        values["prefix"] = region_prefix(region) + "%"
    scope = list(where)
    states = filters.get("state")
    if states:
        asked = [states] if isinstance(states, str) else states
        wanted = [s for st in asked for s in STATES.get(st, [st])]
        where.append("state = ANY(:states)")
        values["states"] = wanted
    if "severity_max" in filters:
        where.append("severity <= :sevmax")
        values["sevmax"] = filters["severity_max"]
    if "severity" in filters:
        where.append("severity = ANY(:sevs)")
        values["sevs"] = filters["severity"]
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT state, severity, count(*) FROM alarms WHERE {' AND '.join(where)} "
                "GROUP BY state, severity"
            ),
            values,
        ).all()
        total_open = conn.execute(
            text(
                f"SELECT count(*) FROM alarms WHERE {' AND '.join(scope)} "
                "AND state IN ('new', 'acknowledged', 'dispatched')"
            ),
            values,
        ).scalar()
    by_state: dict[str, int] = {}
    by_sev: dict[str, int] = {}
    for st, sev, n in rows:
        by_state[st] = by_state.get(st, 0) + n
        by_sev[str(sev)] = by_sev.get(str(sev), 0) + n
    counts = {"total": sum(by_state.values()), "state": by_state, "severity": by_sev}
    return {"counts": counts, "total_open": total_open}


def _agree(client, headers, engine) -> None:
    """Every listing's counts and open total from the API equal a COUNT(*) on alarms, and the
    tally as a whole equals alarms counted by region, state and severity."""
    for region, filters in LISTINGS:
        params = {"limit": 1, **filters} | ({"region": region} if region else {})
        r = client.get("/api/v1/alarms", headers=headers["t-operator"], params=params)
        assert r.status_code == 200, r.text
        got = {"counts": r.json()["counts"], "total_open": r.json()["total_open"]}
        assert got == _by_count(engine, region, filters), (region, filters)
    with engine.connect() as conn:
        tally = conn.execute(
            text(
                "SELECT region_code, state, severity, sum(n) FROM alarm_tally "
                "GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3"
            )
        ).all()
        counted = conn.execute(
            text(
                "SELECT coalesce(region_code, ''), state, severity, count(*) FROM alarms "
                "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            )
        ).all()
    assert [tuple(r) for r in tally] == [tuple(r) for r in counted]


def _compact(engine) -> int:
    with engine.begin() as conn:
        return conn.execute(text("SELECT alarm_tally_compact()")).scalar()


def _store(engine, specs) -> list[int]:
    """Store alarms (device, kind, severity); the ids of new and merged ones, in order."""
    now = time.time()
    with engine.begin() as conn:
        out = store_alarms(
            conn,
            [
                AlarmIn(dev, f"t-{dev}-{time.time_ns()}-{i}", kind, sev, now, 115.371, 28.3711)
                for i, (dev, kind, sev) in enumerate(specs)
            ],
        )
    return [a["id"] for a in out.new] + [a["id"] for a in out.merged]


def _device(client, headers, county: str, lon: float, lat: float) -> str:
    body = {"id": device_id(county), "lon": lon, "lat": lat}
    who = "t-installer" if county == COUNTY_A else "t-installer-b"
    r = client.post("/api/v1/devices", headers=headers[who], json=body)
    assert r.status_code == 201, r.text
    return body["id"]


def test_only_scope_state_and_severity_are_tallied():
    assert tallied(frozenset({"states", "severity_max", "severities", "scope_lo0", "scope_hi0"}))
    for other in ("kinds", "q_prefix", "since", "until", "device_id"):
        assert not tallied(frozenset({"states", other}))


def test_counts_follow_alarms_through_their_life(client, headers, engine):
    """Counts agree with COUNT(*) after new alarms in two counties, merged repeats (one more
    severe, which moves it to another severity), acknowledge, dispatch, resolve, false alarm,
    an alarm moved to another region, one deleted, with deltas pending and after compaction."""
    a1 = _device(client, headers, COUNTY_A, 115.3701, 28.3701)
    b1 = _device(client, headers, COUNTY_B, 114.95, 27.80)
    ids = _store(
        engine,
        [(a1, "smoke", 3), (a1, "panic", 1), (a1, "intrusion", 2), (b1, "smoke", 4)],
    )
    _agree(client, headers, engine)
    merged = _store(engine, [(a1, "smoke", 2), (a1, "smoke", 3), (b1, "smoke", 4)])
    assert set(merged) <= set(ids)  # repeats of open alarms: merged, none new
    _agree(client, headers, engine)
    with engine.begin() as conn:
        lifecycle.acknowledge(conn, ids[0], "t-operator")
        lifecycle.acknowledge(conn, ids[1], "t-operator")
        lifecycle.dispatch(conn, ids[1], "t-operator")
    _agree(client, headers, engine)
    assert _compact(engine) > 0
    _agree(client, headers, engine)
    with engine.begin() as conn:
        lifecycle.resolve(conn, ids[1], "t-operator")
        lifecycle.acknowledge(conn, ids[3], "t-operator")
        lifecycle.mark_false(conn, ids[3], "t-operator")
        # the region an alarm is counted in changes (the reader's scope then sees it elsewhere)
        conn.execute(
            text("UPDATE alarms SET region_code = :r WHERE id = :i"), {"r": VILLAGE_B1, "i": ids[2]}
        )
    _agree(client, headers, engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alarms SET region_code = NULL WHERE id = :i"), {"i": ids[0]})
        conn.execute(text("DELETE FROM alarm_cameras WHERE alarm_id = :i"), {"i": ids[2]})
        conn.execute(text("DELETE FROM alarm_events WHERE alarm_id = :i"), {"i": ids[2]})
        conn.execute(text("DELETE FROM alarm_messages WHERE alarm_id = :i"), {"i": ids[2]})
        conn.execute(text("DELETE FROM alarms WHERE id = :i"), {"i": ids[2]})
    _agree(client, headers, engine)
    _compact(engine)
    _agree(client, headers, engine)
    with engine.connect() as conn:
        deltas = conn.execute(text("SELECT count(*) FROM alarm_tally WHERE NOT rolled")).scalar()
        keys = conn.execute(
            text(
                "SELECT count(*) = count(DISTINCT (region_code, state, severity)) FROM alarm_tally"
            )
        ).scalar()
    assert deltas == 0 and keys  # compacted: one row per key


def test_a_rolled_back_change_counts_nothing(client, headers, engine):
    a1 = _device(client, headers, COUNTY_A, 115.3702, 28.3702)
    count = "SELECT count(*) FROM alarm_tally"
    with engine.connect() as conn:
        before = conn.execute(text(count)).scalar()
    with engine.connect() as conn:
        store_alarms(conn, [AlarmIn(a1, f"rb-{time.time_ns()}", "smoke", 2, time.time())])
        conn.execute(text("UPDATE alarms SET state = 'resolved' WHERE device_id = :d"), {"d": a1})
        conn.rollback()
    with engine.connect() as conn:
        assert conn.execute(text(count)).scalar() == before
    _agree(client, headers, engine)


def test_concurrent_writers_and_compaction_keep_counts_exact(client, headers, engine):
    """Four writers storing, merging and stepping alarms through their lifecycle at once, while
    compaction runs in a loop: the counts still equal COUNT(*) when they are done."""
    devices = [_device(client, headers, COUNTY_A, 115.371 + i / 1000, 28.371) for i in range(2)]
    devices += [_device(client, headers, COUNTY_B, 114.95 + i / 1000, 27.80) for i in range(2)]
    failures: list[BaseException] = []
    done = threading.Event()

    def writer(dev: str) -> None:
        try:
            for round_ in range(12):
                specs = [(dev, f"k{round_ % 3}", 1 + (round_ + j) % 4) for j in range(5)]
                ids = _store(engine, specs)
                with engine.begin() as conn:
                    for i, alarm_id in enumerate(sorted(set(ids))):
                        state = conn.execute(
                            text("SELECT state FROM alarms WHERE id = :i"), {"i": alarm_id}
                        ).scalar()
                        if state == "new" and i % 2 == 0:
                            lifecycle.acknowledge(conn, alarm_id, "t-operator")
                            if round_ % 2:
                                lifecycle.resolve(conn, alarm_id, "t-operator")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    def compactor() -> None:
        try:
            while not done.is_set():
                _compact(engine)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(d,)) for d in devices]
    roller = threading.Thread(target=compactor)
    roller.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    roller.join(60)
    assert not failures, failures
    _agree(client, headers, engine)
    _compact(engine)
    _agree(client, headers, engine)


def test_a_readers_scope_and_its_change(client, headers, engine):
    """An operator assigned two regions (two scope ranges) gets the counts of those regions
    alone, and the counts follow when the assignment changes (read at every request)."""
    from api.users import ensure_user

    with engine.begin() as conn:
        user = ensure_user(conn, "t-scoped-op", "scoped-pass-1", "operator", [TOWN_A, COUNTY_B])
    r = client.post(
        "/api/v1/auth/token", json={"username": "t-scoped-op", "password": "scoped-pass-1"}
    )
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    a1 = _device(client, headers, COUNTY_A, 115.3703, 28.3703)
    b1 = _device(client, headers, COUNTY_B, 114.951, 27.801)
    _store(engine, [(a1, "smoke", 2), (b1, "panic", 1), (b1, "smoke", 3)])

    def agrees(regions: list[str], filters: dict) -> None:
        got = client.get("/api/v1/alarms", headers=h, params={"limit": 1, **filters})
        assert got.status_code == 200, got.text
        want: dict = {"total": 0, "state": {}, "severity": {}}
        total_open = 0
        for region in regions:
            one = _by_count(engine, region, filters)
            total_open += one["total_open"]
            want["total"] += one["counts"]["total"]
            for key in ("state", "severity"):
                for k, n in one["counts"][key].items():
                    want[key][k] = want[key].get(k, 0) + n
        assert (got.json()["counts"], got.json()["total_open"]) == (want, total_open)

    for filters in ({}, {"state": "open"}, {"severity_max": 2}):
        agrees([TOWN_A, COUNTY_B], filters)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM user_regions WHERE user_id = :u"), {"u": user.id})
        conn.execute(
            text("INSERT INTO user_regions (user_id, region_code) VALUES (:u, :r)"),
            {"u": user.id, "r": VILLAGE_A1},
        )
    for filters in ({}, {"state": "open"}):
        agrees([VILLAGE_A1], filters)
