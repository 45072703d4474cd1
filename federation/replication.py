"""A county hub publishes its tables to its city by PostgreSQL logical replication; the city subscribes.

Nothing here copies rows itself: the county gets a publication (`gw_fed`) and a login that may
only replicate and read the published tables; the city gets a subscription per county. What this
module adds is the naming that keeps rows from several counties apart at the city:

- every published row carries `origin`, the hub it was made at (`federation_origin()`);
- each county's serial ids (alarms, their trail, presence intervals, camera health) come from a
  range of its own, `hub_no * 2^50 ...`; joining moves the rows made before into it;
- device ids and region codes are GB/T 28181 / GB/T 2260 codes, unique country-wide by their
  division prefix: a county publishes the regions of its scope only, and a device id another hub
  already has is refused at join (and later stops that county's subscription, nothing overwritten).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

PUBLICATION = "gw_fed"
REPL_ROLE = "gw_fed_repl"
RANGE_BITS = 50
#: Published tables, in the order a city applies their initial copy.
FEDERATED = (
    "regions",
    "devices",
    "device_presence",
    "alarms",
    "alarm_events",
    "alarm_cameras",
    "camera_health",
)
#: Tables whose bigserial id is moved into the hub's range (alarms first: its children cascade).
SERIAL_TABLES = ("alarms", "alarm_events", "device_presence", "camera_health")
HUB_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SCOPE = re.compile(r"^[0-9]{2,12}$")
HOST = re.compile(r"^[A-Za-z0-9.:_-]{1,253}$")


class FederationError(RuntimeError):
    """Federation could not be set up or read; the message says what to do."""


def libpq_url(url: str) -> str:
    """A libpq URL (postgresql://...) from a SQLAlchemy or libpq URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def subscription_name(hub_id: str) -> str:
    """The city's subscription (and the county's replication slot) for a county."""
    return f"gw_fed_{hub_id}"


def id_range(hub_no: int) -> tuple[int, int]:
    """The first and last serial id a hub numbered hub_no may make (hub 0, the city: from 1)."""
    base = hub_no << RANGE_BITS
    return base + 1, base + (1 << RANGE_BITS) - 1


def connect(url: str, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A psycopg connection, or FederationError naming the server that could not be reached."""
    try:
        return psycopg.connect(libpq_url(url), autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        where = make_url(url).set(password="***").render_as_string(hide_password=True)
        raise FederationError(f"cannot connect to {where}: {exc}") from exc


def _require_migrated(conn: psycopg.Connection[Any], what: str) -> None:
    if conn.execute("SELECT to_regclass('federation_members')").fetchone() == (None,):
        raise FederationError(
            f"the {what} database lacks the federation tables: run `gridwatch db migrate` there"
        )


@dataclass
class JoinPlan:
    """What `gridwatch federation join` was asked to do."""

    hub_id: str
    scope: str
    upstream_url: str
    local_url: str
    advertise_host: str
    advertise_port: int
    repl_password: str
    upstream_id: str = "city"

    def check(self) -> None:
        if not HUB_ID.match(self.hub_id) or not HUB_ID.match(self.upstream_id):
            raise FederationError(
                "a hub id is 1-40 lower-case letters, digits or _ starting with a letter"
            )
        if not SCOPE.match(self.scope):
            raise FederationError(
                f"scope {self.scope!r} must be a division code prefix of 2-12 digits (e.g. 360121)"
            )
        if not HOST.match(self.advertise_host):
            raise FederationError(f"advertise host {self.advertise_host!r} is not a host name")


@dataclass
class JoinResult:
    """What joining set up."""

    hub_id: str
    hub_no: int
    upstream_id: str
    subscription: str
    id_first: int
    id_last: int
    renumbered: dict[str, int] = field(default_factory=dict)


def guess_scope(local_url: str) -> str | None:
    """The county code of this hub's regions when it holds exactly one county (level 3)."""
    with connect(local_url) as conn:
        rows = conn.execute("SELECT left(code, 6) FROM regions WHERE level = 3 LIMIT 2").fetchall()
    return rows[0][0] if len(rows) == 1 else None


def join(plan: JoinPlan) -> JoinResult:
    """Publish this hub's tables to the upstream hub and make the upstream subscribe (idempotent)."""
    plan.check()
    with connect(plan.upstream_url) as city, connect(plan.local_url) as county:
        _require_migrated(city, "upstream")
        _require_migrated(county, "local")
        upstream_id, hub_no = _register_at_city(city, plan)
        _check_collisions(city, county, plan)
        renumbered = _prepare_county(county, plan, hub_no, upstream_id)
        city.commit()
        county.commit()
    _subscribe(plan)
    first, last = id_range(hub_no)
    return JoinResult(
        plan.hub_id, hub_no, upstream_id, subscription_name(plan.hub_id), first, last, renumbered
    )


def _register_at_city(city: psycopg.Connection[Any], plan: JoinPlan) -> tuple[str, int]:
    """The city's own id (named now if it had none) and the county's number there."""
    city.execute("LOCK TABLE federation_members IN EXCLUSIVE MODE")
    row = city.execute("SELECT hub_id, hub_no FROM federation_self").fetchone()
    if row is None:
        city.execute(
            "INSERT INTO federation_self (hub_id, hub_no) VALUES (%s, 0)", (plan.upstream_id,)
        )
        for table in FEDERATED:
            city.execute(
                sql.SQL("UPDATE {} SET origin = %s WHERE origin = 'local'").format(
                    sql.Identifier(table)
                ),
                (plan.upstream_id,),
            )
        upstream_id = plan.upstream_id
    else:
        upstream_id = row[0]
    if upstream_id == plan.hub_id:
        raise FederationError(f"the upstream hub is itself named {plan.hub_id!r}")
    for other, scope in city.execute(
        "SELECT hub_id, scope FROM federation_members WHERE hub_id <> %s", (plan.hub_id,)
    ).fetchall():
        if scope.startswith(plan.scope) or plan.scope.startswith(scope):
            raise FederationError(
                f"scope {plan.scope} overlaps {other}'s scope {scope} at {upstream_id}: "
                "each county publishes the regions of its own division code"
            )
    found = city.execute(
        "SELECT hub_no FROM federation_members WHERE hub_id = %s", (plan.hub_id,)
    ).fetchone()
    if found:
        hub_no = int(found[0])
        city.execute(
            "UPDATE federation_members SET scope = %s WHERE hub_id = %s", (plan.scope, plan.hub_id)
        )
    else:
        got = city.execute("SELECT coalesce(max(hub_no), 0) + 1 FROM federation_members").fetchone()
        hub_no = int(got[0]) if got else 1
        city.execute(
            "INSERT INTO federation_members (hub_id, hub_no, scope, subscription) "
            "VALUES (%s, %s, %s, %s)",
            (plan.hub_id, hub_no, plan.scope, subscription_name(plan.hub_id)),
        )
    return upstream_id, hub_no


def _check_collisions(
    city: psycopg.Connection[Any], county: psycopg.Connection[Any], plan: JoinPlan
) -> None:
    """Refuse a county whose device ids or scoped region codes another hub already has."""
    ids = [r[0] for r in county.execute("SELECT id FROM devices").fetchall()]
    clash = city.execute(
        "SELECT id, origin FROM devices WHERE id = ANY(%s) AND origin <> %s ORDER BY id LIMIT 10",
        (ids, plan.hub_id),
    ).fetchall()
    if clash:
        listed = ", ".join(f"{i} (from {o})" for i, o in clash)
        raise FederationError(
            f"device ids of {plan.hub_id} already exist upstream: {listed}. A GB/T 28181 id is "
            "unique country-wide; give these devices their own ids at this hub, then join again"
        )
    clash = city.execute(
        "SELECT code, origin FROM regions WHERE code LIKE %s AND origin <> %s ORDER BY code LIMIT 10",
        (plan.scope + "%", plan.hub_id),
    ).fetchall()
    if clash:
        listed = ", ".join(f"{c} (from {o})" for c, o in clash)
        raise FederationError(
            f"regions in scope {plan.scope} already exist upstream: {listed}. The county's "
            "regions come from the county: remove them upstream (or choose the right scope)"
        )


def _prepare_county(
    county: psycopg.Connection[Any], plan: JoinPlan, hub_no: int, upstream_id: str
) -> dict[str, int]:
    """Name this hub, move its ids into its range, label its rows, make the login and publication."""
    county.execute("LOCK TABLE federation_self IN EXCLUSIVE MODE")
    row = county.execute("SELECT hub_id, hub_no FROM federation_self").fetchone()
    if row is not None and (row[0], row[1]) != (plan.hub_id, hub_no):
        raise FederationError(
            f"this hub already joined as {row[0]} (number {row[1]}); it cannot become "
            f"{plan.hub_id} (number {hub_no}) without renumbering its rows again"
        )
    county.execute(
        "INSERT INTO federation_self (hub_id, hub_no, scope, upstream) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (singleton) DO UPDATE SET scope = EXCLUDED.scope, upstream = EXCLUDED.upstream",
        (plan.hub_id, hub_no, plan.scope, upstream_id),
    )
    first, last = id_range(hub_no)
    renumbered: dict[str, int] = {}
    for table in SERIAL_TABLES:
        ident = sql.Identifier(table)
        if hub_no > 0:
            cur = county.execute(
                sql.SQL("UPDATE {} SET id = id + %s WHERE id < %s").format(ident),
                (first - 1, first),
            )
            renumbered[table] = cur.rowcount
        got = county.execute(
            sql.SQL("SELECT coalesce(max(id), %s) + 1 FROM {} WHERE id BETWEEN %s AND %s").format(
                ident
            ),
            (first - 1, first, last),
        ).fetchone()
        seq = county.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
        if not got or not seq or not seq[0]:
            raise FederationError(f"{table}.id has no sequence")
        county.execute(
            sql.SQL(
                "ALTER SEQUENCE {} MINVALUE {} MAXVALUE {} START WITH {} RESTART WITH {}"
            ).format(
                sql.SQL(seq[0]),
                sql.Literal(first),
                sql.Literal(last),
                sql.Literal(first),
                sql.Literal(int(got[0])),
            )
        )
    for table in FEDERATED:
        county.execute(
            sql.SQL("UPDATE {} SET origin = %s WHERE origin = 'local'").format(
                sql.Identifier(table)
            ),
            (plan.hub_id,),
        )
    exists = county.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (REPL_ROLE,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    county.execute(
        sql.SQL(
            "{} ROLE {} LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
        ).format(sql.SQL(verb), sql.Identifier(REPL_ROLE), sql.Literal(plan.repl_password))
    )
    dbname = county.execute("SELECT current_database()").fetchone()
    county.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(dbname[0] if dbname else "gridwatch"), sql.Identifier(REPL_ROLE)
        )
    )
    county.execute(
        sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in FEDERATED), sql.Identifier(REPL_ROLE)
        )
    )
    regions = sql.SQL("regions WHERE (code LIKE {})").format(sql.Literal(plan.scope + "%"))
    others = sql.SQL(", ").join(sql.Identifier(t) for t in FEDERATED if t != "regions")
    if county.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (PUBLICATION,)).fetchone():
        county.execute(
            sql.SQL("ALTER PUBLICATION {} SET TABLE {}, {}").format(
                sql.Identifier(PUBLICATION), regions, others
            )
        )
    else:
        county.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}, {}").format(
                sql.Identifier(PUBLICATION), regions, others
            )
        )
    return renumbered


def _county_conninfo(plan: JoinPlan) -> str:
    dbname = make_url(plan.local_url).database or "gridwatch"
    return (
        f"host={plan.advertise_host} port={int(plan.advertise_port)} dbname={dbname} "
        f"user={REPL_ROLE} password={plan.repl_password} connect_timeout=10"
    )


def _subscribe(plan: JoinPlan) -> None:
    """Create the city's subscription to the county (or refresh its connection and enable it)."""
    name = subscription_name(plan.hub_id)
    with connect(plan.upstream_url, autocommit=True) as city:
        exists = city.execute(
            "SELECT 1 FROM pg_subscription WHERE subname = %s", (name,)
        ).fetchone()
        conninfo = sql.Literal(_county_conninfo(plan))
        try:
            if exists:
                city.execute(
                    sql.SQL("ALTER SUBSCRIPTION {} CONNECTION {}").format(
                        sql.Identifier(name), conninfo
                    )
                )
                city.execute(
                    sql.SQL("ALTER SUBSCRIPTION {} REFRESH PUBLICATION").format(
                        sql.Identifier(name)
                    )
                )
                city.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sql.Identifier(name)))
            else:
                city.execute(
                    sql.SQL(
                        "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} "
                        "WITH (disable_on_error = true)"
                    ).format(sql.Identifier(name), conninfo, sql.Identifier(PUBLICATION))
                )
        except psycopg.Error as exc:
            raise FederationError(f"the upstream could not subscribe to this hub: {exc}") from exc


def set_enabled(url: str, hub_id: str, enabled: bool) -> None:
    """Pause or resume the city's subscription to a county (the county keeps its changes)."""
    if not HUB_ID.match(hub_id):
        raise FederationError(f"{hub_id!r} is not a hub id")
    name = subscription_name(hub_id)
    with connect(url, autocommit=True) as city:
        if not city.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (name,)).fetchone():
            raise FederationError(f"no county {hub_id} has joined this hub")
        verb = sql.SQL("ENABLE" if enabled else "DISABLE")
        city.execute(sql.SQL("ALTER SUBSCRIPTION {} {}").format(sql.Identifier(name), verb))


# --------------------------------------------------------------------------- status


def lsn_int(lsn: str | None) -> int | None:
    """A pg_lsn 'X/Y' as an integer byte position."""
    if not lsn:
        return None
    hi, _, lo = str(lsn).partition("/")
    return (int(hi, 16) << 32) + int(lo, 16)


@dataclass
class MemberStatus:
    """A county as its city sees it."""

    hub_id: str
    hub_no: int
    scope: str
    state: str
    enabled: bool
    tables_ready: int
    tables: int
    received_lsn: str | None
    last_received: datetime | None
    last_received_age_s: float | None
    lag_bytes: int | None
    apply_errors: int
    sync_errors: int
    detail: str = ""


@dataclass
class SlotStatus:
    """An upstream's replication slot at this hub (this hub publishes to it)."""

    slot: str
    active: bool
    wal_status: str | None
    lag_bytes: int | None


@dataclass
class FederationStatus:
    """This hub's place in the federation: its name, what it publishes, whom it subscribes to."""

    hub_id: str
    hub_no: int | None
    scope: str | None
    upstream: str | None
    publishing: list[SlotStatus]
    members: list[MemberStatus]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for m in out["members"]:
            if m["last_received"] is not None:
                m["last_received"] = m["last_received"].isoformat()
        return out


def _county_wal_lsn(conninfo: str) -> int | None:
    """The county's current WAL position, read over the city's own subscription login."""
    try:
        with psycopg.connect(conninfo + " connect_timeout=3", autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    except psycopg.Error:
        return None
    return lsn_int(row[0]) if row else None


def status(url: str, probe: bool = True) -> FederationStatus:
    """The federation as this hub sees it; with probe, each county's lag is read from the county."""
    with connect(url, autocommit=True) as conn:
        _require_migrated(conn, "local")
        me = conn.execute("SELECT hub_id, hub_no, scope, upstream FROM federation_self").fetchone()
        slots = [
            SlotStatus(r[0], bool(r[1]), r[2], int(r[3]) if r[3] is not None else None)
            for r in conn.execute(
                "SELECT slot_name, active, wal_status, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                "FROM pg_replication_slots WHERE slot_name LIKE 'gw\\_fed\\_%' ORDER BY slot_name"
            ).fetchall()
        ]
        rows = conn.execute(
            """
            SELECT m.hub_id, m.hub_no, m.scope, s.subenabled, s.subconninfo,
                   st.pid IS NOT NULL, st.latest_end_lsn::text, st.last_msg_receipt_time,
                   extract(epoch FROM now() - st.last_msg_receipt_time),
                   coalesce(ss.apply_error_count, 0), coalesce(ss.sync_error_count, 0),
                   (SELECT count(*) FILTER (WHERE r.srsubstate = 'r') FROM pg_subscription_rel r
                     WHERE r.srsubid = s.oid),
                   (SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid)
            FROM federation_members m
            LEFT JOIN pg_subscription s ON s.subname = m.subscription
            LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL
            LEFT JOIN pg_stat_subscription_stats ss ON ss.subid = s.oid
            ORDER BY m.hub_no
            """
        ).fetchall()
    members = []
    for r in rows:
        (hub_id, hub_no, scope, enabled, conninfo, worker, end_lsn, last, age, aerr, serr) = r[:11]
        ready, tables = int(r[11] or 0), int(r[12] or 0)
        lag = None
        if enabled is None:
            state, detail = "missing", "no subscription: run `gridwatch federation join` again"
        elif not enabled:
            state = "error" if aerr or serr else "paused"
            detail = (
                "disabled after an error (see the PostgreSQL log)"
                if state == "error"
                else "paused: gridwatch federation resume " + hub_id
            )
        elif not worker:
            state, detail = "connecting", ""
        elif ready < tables:
            state, detail = "syncing", f"initial copy {ready}/{tables} tables"
        else:
            state, detail = "streaming", ""
        if probe and conninfo and end_lsn:
            now_lsn = _county_wal_lsn(conninfo)
            got = lsn_int(end_lsn)
            if now_lsn is not None and got is not None:
                lag = max(0, now_lsn - got)
            elif now_lsn is None:
                detail = (detail + "; " if detail else "") + "county unreachable"
        members.append(
            MemberStatus(
                hub_id=hub_id,
                hub_no=int(hub_no),
                scope=scope,
                state=state,
                enabled=bool(enabled),
                tables_ready=ready,
                tables=tables,
                received_lsn=end_lsn,
                last_received=last,
                last_received_age_s=float(age) if age is not None else None,
                lag_bytes=lag,
                apply_errors=int(aerr),
                sync_errors=int(serr),
                detail=detail,
            )
        )
    return FederationStatus(
        hub_id=me[0] if me else "local",
        hub_no=me[1] if me else None,
        scope=me[2] if me else None,
        upstream=me[3] if me else None,
        publishing=slots,
        members=members,
    )
