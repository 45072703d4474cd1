"""Least-privilege database roles of the local cluster: an owner that migrates, and ingest, api,
auditor, vision and gateway roles that may only do what their service does (passwords in
secrets.json)."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

# owner: owns the schema and runs alembic and the admin commands (import, generate, users);
# api: reads everything and changes rows (no DDL); ingest: reads the registry and writes only what
# ingest writes, never users; auditor: reads, never password hashes or device nonces.
# vision, gb28181 and alarmrx: the vision worker and the two gateways, each with exactly the
# tables and columns of NARROW below (nothing by default).
# `admin` is the cluster's bootstrap superuser: roles, databases and extensions, nothing else.
DbRole = Literal["owner", "api", "ingest", "auditor", "vision", "gb28181", "alarmrx"]
ROLES: tuple[DbRole, ...] = ("owner", "api", "ingest", "auditor", "vision", "gb28181", "alarmrx")
ADMIN_USER = "gridwatch"
# What only ingest (from the devices' own messages) writes on a device row, never a gateway.
DEVICE_LIVE_STATE = (
    "status",
    "last_seen",
    "last_position",
    "last_position_at",
    "last_speed_kmh",
    "last_heading_deg",
    "origin",
)

# What the ingest worker (and its broker provisioner) writes, and how.
INGEST_WRITES: dict[str, str] = {
    "alarms": "INSERT, UPDATE",
    "alarm_events": "INSERT",
    "alarm_messages": "INSERT, UPDATE",
    "alarm_cameras": "INSERT, UPDATE, DELETE",
    "positions": "INSERT, UPDATE",
    "device_presence": "INSERT, UPDATE",
    "device_snapshots": "INSERT, UPDATE",
    "camera_health": "INSERT, UPDATE",
    "dead_letters": "INSERT, DELETE",
    "hub_events": "INSERT, DELETE",
    "pending_devices": "INSERT, UPDATE, DELETE",
    "geofence_state": "INSERT, UPDATE, DELETE",
    "geofence_events": "INSERT",
    "devices": "UPDATE",
    "audit_log": "INSERT",
}
# Never readable by ingest: accounts, their sign-in failures and the API's own jobs.
INGEST_HIDDEN = ("users", "user_regions", "login_failures", "api_audit_jobs")
# Never readable by the auditor (whole tables); users are readable but for the hash.
AUDITOR_HIDDEN = ("device_mqtt_nonces", "login_failures")
SECRET_COLUMNS = {"users": ("password_hash",)}


class AllBut(tuple[str, ...]):
    """Every column of the table except these (resolved against the migrated table)."""


# The narrow roles: {table: {privilege: the columns, or None for the whole table}}; everything
# not listed is refused (tests/security/test_db_roles.py pins the same sets from the catalog).
# They may use the sequences of the tables they insert into, nothing else of the schema.
Columns = tuple[str, ...] | None
# A federated table's `origin` default, federation_origin(), reads this hub's id (federation/).
ORIGIN = ("hub_id",)
NARROW: dict[str, dict[str, dict[str, Columns]]] = {
    # vision/store.py: the cameras and their settings, the references it learns, inspection rounds
    "vision": {
        "devices": {"SELECT": ("id", "kind", "region_code", "stream_url", "retired_at")},
        "vision_cameras": {"SELECT": None},
        "vision_references": {"SELECT": None, "INSERT": None, "UPDATE": None},
        "inspection_rounds": {"SELECT": None, "INSERT": None, "UPDATE": None},
        "inspection_results": {"SELECT": None, "INSERT": None, "UPDATE": None},
    },
    # gb28181/store.py: registrations and catalogs (channels registered as devices through
    # geo.bulk: devices, their registrations, camera-intersection links, the audit row), device
    # info; never a device's live state (ingest's, from what the gateway publishes) nor its SIP
    # password (`gridwatch gb28181 device`, an admin command).
    "gb28181": {
        "devices": {
            # the bulk upsert returns xmax, a system column: only a table-wide SELECT covers it
            "SELECT": None,
            "INSERT": AllBut(DEVICE_LIVE_STATE),
            "UPDATE": AllBut(DEVICE_LIVE_STATE),
        },
        "gb_devices": {
            "SELECT": None,
            "INSERT": AllBut(("sip_ha1",)),
            "UPDATE": AllBut(("sip_ha1",)),
        },
        "device_registrations": {"SELECT": None, "INSERT": None, "UPDATE": None},
        "intersection_views": {"SELECT": None, "INSERT": None, "DELETE": None},
        "intersections": {"SELECT": ("id", "geom")},
        "regions": {"SELECT": ("code", "level", "retired_at")},
        "region_parts": {"SELECT": None},
        # a channel without a village of its own gets the approximate one (geo.bulk, 0013)
        "village_area_parts": {"SELECT": ("village_code", "geom")},
        "grids": {"SELECT": ("id", "level", "geom")},
        "audit_log": {"INSERT": ("actor", "action", "entity", "entity_id", "detail")},
        "pending_devices": {"SELECT": None, "INSERT": None, "UPDATE": None},
        "federation_self": {"SELECT": ORIGIN},
    },
    # alarmrx/store.py: the panels' accounts, a restoral noted on the open alarm (its event, the
    # detail and the bus event), unknown accounts on the pending list
    "alarmrx": {
        "sia_accounts": {"SELECT": None},
        "devices": {"SELECT": ("id", "retired_at")},
        "alarms": {
            "SELECT": ("id", "device_id", "kind", "state", "region_code", "raised_at", "detail"),
            "UPDATE": ("detail",),  # also what SELECT ... FOR UPDATE needs
        },
        "alarm_events": {"INSERT": ("alarm_id", "state", "actor", "at", "note")},
        "hub_events": {"SELECT": ("id",), "INSERT": ("kind", "region_code", "payload")},
        "pending_devices": {"SELECT": None, "INSERT": None, "UPDATE": None},
        "federation_self": {"SELECT": ORIGIN},
    },
}
# A narrow role's rights on the database beyond CONNECT (geo.bulk stages rows in a temp table).
NARROW_DATABASE = {"gb28181": "TEMPORARY"}
# alarm_tally_compact: ingest folds the alarm counts' deltas (migration 0016)
DEFINER_FUNCTIONS = ("gw_ensure_position_partitions(date, integer)", "alarm_tally_compact()")


def role_user(role: str) -> str:
    """The PostgreSQL user name of a hub role ('admin' is the bootstrap superuser)."""
    return ADMIN_USER if role == "admin" else f"gridwatch_{role}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def provision_roles(admin_url: str, passwords: dict[str, str]) -> None:
    """As the superuser: create or update the hub roles (login, no superuser, no CREATEROLE),
    make the owner own the database and every object in it that is not an extension's."""
    target = make_url(admin_url)
    dbname = target.database or ""
    engine = create_engine(
        target.set(database="postgres"), isolation_level="AUTOCOMMIT", future=True
    )
    try:
        with engine.connect() as conn:
            for role in ROLES:
                user = role_user(role)
                exists = conn.execute(
                    text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": user}
                ).scalar()
                verb = "ALTER" if exists else "CREATE"
                pw = conn.execute(text("SELECT quote_literal(:p)"), {"p": passwords[role]}).scalar()
                conn.execute(
                    text(
                        f"{verb} ROLE {_q(user)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                        f"NOREPLICATION NOBYPASSRLS PASSWORD {pw}"
                    )
                )
            conn.execute(text(f"ALTER DATABASE {_q(dbname)} OWNER TO {_q(role_user('owner'))}"))
    finally:
        engine.dispose()
    engine = create_engine(target, isolation_level="AUTOCOMMIT", future=True)
    try:
        with engine.connect() as conn:
            _hand_over(conn, role_user("owner"))
    finally:
        engine.dispose()


def _hand_over(conn: Connection, owner: str) -> None:
    """Give `owner` every relation and function in public made by another role (a database
    migrated before the roles existed), except the extensions' and sequences owned by columns."""
    rows = conn.execute(
        text(
            """SELECT c.oid::regclass::text, c.relkind FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                 AND pg_get_userbyid(c.relowner) <> :o
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                 AND d.objid = c.oid AND (d.deptype = 'e' OR (c.relkind = 'S'
                                 AND d.deptype IN ('a', 'i'))))"""
        ),
        {"o": owner},
    ).all()
    kinds = {"m": "MATERIALIZED VIEW", "v": "VIEW", "S": "SEQUENCE", "f": "FOREIGN TABLE"}
    for name, kind in rows:
        conn.execute(text(f"ALTER {kinds.get(kind, 'TABLE')} {name} OWNER TO {_q(owner)}"))
    funcs = conn.execute(
        text(
            """SELECT p.oid::regprocedure::text FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> :o
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                 AND d.objid = p.oid AND d.deptype = 'e')"""
        ),
        {"o": owner},
    ).scalars()
    for sig in list(funcs):
        conn.execute(text(f"ALTER FUNCTION {sig} OWNER TO {_q(owner)}"))


def _tables(conn: Connection) -> list[str]:
    return list(
        conn.execute(
            text(
                """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
                     AND NOT c.relispartition
                     AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                       AND d.deptype = 'e')"""
            )
        ).scalars()
    )


def _columns(conn: Connection, table: str) -> list[str]:
    return list(
        conn.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass)"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": table},
        ).scalars()
    )


def _sequences_of(conn: Connection, table: str) -> list[str]:
    """The sequences owned by a table's columns (its serial ids)."""
    return list(
        conn.execute(
            text(
                "SELECT d.objid::regclass::text FROM pg_depend d JOIN pg_class s ON s.oid = d.objid"
                " WHERE d.classid = 'pg_class'::regclass AND d.refobjid = CAST(:t AS regclass)"
                " AND s.relkind = 'S' AND d.deptype IN ('a', 'i')"
            ),
            {"t": table},
        ).scalars()
    )


def _grant_narrow(conn: Connection, role: str, tables: list[str]) -> None:
    """Grant a narrow role exactly its NARROW entries (on the tables that exist)."""
    user = _q(role_user(role))
    for table, privileges in NARROW[role].items():
        if table not in tables:
            continue
        for privilege, cols in privileges.items():
            if cols is None:
                conn.execute(text(f"GRANT {privilege} ON {_q(table)} TO {user}"))
                continue
            if isinstance(cols, AllBut):
                cols = tuple(c for c in _columns(conn, table) if c not in cols)
            collist = ", ".join(_q(c) for c in cols)
            conn.execute(text(f"GRANT {privilege} ({collist}) ON {_q(table)} TO {user}"))
        if "INSERT" in privileges:
            for seq in _sequences_of(conn, table):
                conn.execute(text(f"GRANT USAGE ON SEQUENCE {seq} TO {user}"))


def apply_grants(owner_url: str) -> None:
    """As the owner, after every migration: what each role may do, from nothing (idempotent)."""
    target = make_url(owner_url)
    api, ingest, auditor = (_q(role_user(r)) for r in ("api", "ingest", "auditor"))
    narrow = ", ".join(_q(role_user(r)) for r in NARROW)
    engine = create_engine(target, future=True)
    try:
        with engine.begin() as conn:
            db = _q(target.database or "")
            conn.execute(text(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC, {narrow}"))
            conn.execute(text(f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {api}, {ingest}"))
            conn.execute(text(f"GRANT CONNECT ON DATABASE {db} TO {auditor}, {narrow}"))
            for role, extra in NARROW_DATABASE.items():
                conn.execute(text(f"GRANT {extra} ON DATABASE {db} TO {_q(role_user(role))}"))
            conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
            conn.execute(
                text(f"GRANT USAGE ON SCHEMA public TO {api}, {ingest}, {auditor}, {narrow}")
            )
            conn.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {narrow}"))
            tables = _tables(conn)
            everyone = f"{api}, {ingest}, {auditor}, {narrow}"
            for table in tables:
                conn.execute(text(f"REVOKE ALL ON {_q(table)} FROM PUBLIC, {everyone}"))
                conn.execute(text(f"GRANT SELECT ON {_q(table)} TO {api}"))
                if table != "alembic_version":
                    conn.execute(text(f"GRANT INSERT, UPDATE, DELETE ON {_q(table)} TO {api}"))
                if table not in INGEST_HIDDEN:
                    conn.execute(text(f"GRANT SELECT ON {_q(table)} TO {ingest}"))
                if table in INGEST_WRITES:
                    conn.execute(text(f"GRANT {INGEST_WRITES[table]} ON {_q(table)} TO {ingest}"))
                if table in SECRET_COLUMNS:
                    shown = [c for c in _columns(conn, table) if c not in SECRET_COLUMNS[table]]
                    collist = ", ".join(_q(c) for c in shown)
                    conn.execute(text(f"GRANT SELECT ({collist}) ON {_q(table)} TO {auditor}"))
                elif table not in AUDITOR_HIDDEN:
                    conn.execute(text(f"GRANT SELECT ON {_q(table)} TO {auditor}"))
            for role in NARROW:
                _grant_narrow(conn, role, tables)
            conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {api}"))
            conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ingest}"))
            for fn in DEFINER_FUNCTIONS:
                found = conn.execute(text("SELECT to_regprocedure(:f)"), {"f": fn}).scalar()
                if not found:
                    continue
                # Partitions are created by the owner on the worker's behalf, nothing else.
                conn.execute(
                    text(f"ALTER FUNCTION {fn} SECURITY DEFINER SET search_path = public, pg_temp")
                )
                conn.execute(text(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC"))
                conn.execute(text(f"GRANT EXECUTE ON FUNCTION {fn} TO {ingest}, {api}"))
    finally:
        engine.dispose()
