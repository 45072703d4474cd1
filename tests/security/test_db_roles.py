"""Least privilege in the database: the services' roles are no superusers, the ingest role cannot
drop, alter or read accounts, the auditor cannot read password hashes, the partition
function works for ingest without superuser rights, and the vision worker and the GB/T 28181
and SIA gateways have exactly the tables and columns their work needs (one privilege more
fails) while that work runs as them."""

from __future__ import annotations

import random
import time

import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, text

from gridwatch.settings import get_settings
from hardware.gbid import compose

pytestmark = pytest.mark.integration


@pytest.fixture()
def as_role(db_url: str):
    """Open a connection to the test database as one of the hub's roles."""
    settings = get_settings()
    if not settings.local_database:
        pytest.skip("an external database's roles are its operator's")
    dbname = db_url.rsplit("/", 1)[1]
    opened: list[psycopg.Connection] = []

    def connect(role: str) -> psycopg.Connection:
        url = settings.db_url(dbname, role=role).replace("postgresql+psycopg://", "postgresql://")
        conn = psycopg.connect(url, connect_timeout=5)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture()
def role_engine(db_url: str):
    """A SQLAlchemy engine on the test database as one of the hub's roles (what the services'
    own code is given)."""
    from gridwatch.db import get_engine

    settings = get_settings()
    if not settings.local_database:
        pytest.skip("an external database's roles are its operator's")
    dbname = db_url.rsplit("/", 1)[1]
    return lambda role: get_engine(url=settings.db_url(dbname, role=role))


def _refused(conn: psycopg.Connection, sql: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql)
    conn.rollback()


def _refused_sa(engine: Engine, sql: str) -> None:
    with pytest.raises(sqlalchemy.exc.ProgrammingError) as caught:
        with engine.begin() as conn:
            conn.execute(text(sql))
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), caught.value


@pytest.mark.parametrize(
    "role", ["owner", "api", "ingest", "auditor", "vision", "gb28181", "alarmrx"]
)
def test_no_service_role_is_a_superuser(as_role, role: str) -> None:
    conn = as_role(role)
    row = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row == (False, False, False)
    _refused(conn, "COPY (SELECT 1) TO PROGRAM 'true'")


def test_ingest_cannot_drop_alter_or_read_accounts(as_role, make_device) -> None:
    conn = as_role("ingest")
    for sql in (
        "DROP TABLE alarms",
        "TRUNCATE dead_letters",
        "ALTER TABLE devices ADD COLUMN evil text",
        "CREATE TABLE evil (x int)",
        "SELECT password_hash FROM users",
        "SELECT * FROM login_failures",
        "UPDATE users SET role = 'admin'",
        "DELETE FROM devices",
        "INSERT INTO regions (code, name, level) VALUES ('999999', 'x', 1)",
        "DELETE FROM alembic_version",
    ):
        _refused(conn, sql)
    # ... while what ingest does works: it marks a device online and stores a dead letter
    device = make_device()
    conn.execute("UPDATE devices SET last_seen = now() WHERE id = %s", (device,))
    conn.execute(
        "INSERT INTO dead_letters (topic, payload, reason) VALUES ('gw/v1/x/alarm', 'x', 'test')"
    )
    conn.rollback()


def test_ingest_creates_partitions_through_the_owner(as_role) -> None:
    conn = as_role("ingest")
    conn.execute("SELECT gw_ensure_position_partitions((now() + interval '2 years')::date, 1)")
    conn.commit()
    owners = conn.execute(
        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'positions'::regclass"
    ).fetchall()
    assert owners == [("gridwatch_owner",)]


def test_auditor_reads_but_never_password_hashes(as_role) -> None:
    conn = as_role("auditor")
    conn.execute("SELECT count(*) FROM alarms").fetchone()
    conn.execute("SELECT username, role FROM users").fetchall()
    _refused(conn, "SELECT password_hash FROM users")
    _refused(conn, "SELECT * FROM device_mqtt_nonces")
    _refused(conn, "UPDATE alarms SET severity = 1")
    _refused(conn, "INSERT INTO hub_events (kind, payload) VALUES ('x', '{}')")


def test_api_changes_rows_but_not_the_schema(as_role) -> None:
    conn = as_role("api")
    conn.execute("SELECT password_hash FROM users LIMIT 1").fetchall()  # it signs people in
    for sql in ("DROP TABLE users", "ALTER TABLE alarms DROP COLUMN status", "TRUNCATE alarms"):
        _refused(conn, sql)
    _refused(conn, "UPDATE alembic_version SET version_num = 'x'")


def test_a_database_migrated_before_the_roles_is_handed_to_the_owner(db_url: str) -> None:
    from gridwatch.db import drop_database, migrate

    settings = get_settings()
    if not settings.local_database:
        pytest.skip("an external database's roles are its operator's")
    name = db_url.rsplit("/", 1)[1] + "_old"
    old = settings.db_url(name, role="admin")
    try:
        migrate(old)  # as the superuser, the way every database was made before the roles
        migrate(settings.db_url(name, role="owner"))
        url = settings.db_url(name, role="ingest").replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=5) as conn:
            strays = conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') "
                "AND pg_get_userbyid(c.relowner) <> 'gridwatch_owner' "
                "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid "
                "AND d.deptype = 'e')"  # PostGIS's own
            ).fetchall()
            assert strays == []
            conn.execute("SELECT gw_ensure_position_partitions(now()::date, 1)")
            _refused(conn, "SELECT password_hash FROM users")
    finally:
        drop_database(old)


# What the vision worker and the two gateways may do, written out here on its own (not read
# from gridwatch/dbroles.py): (table, privilege) -> the columns, or ALL for the whole table.
ALL = None
# The device columns only ingest writes (from the devices' own messages), never a gateway.
DEVICE_LIVE_STATE = {
    "status",
    "last_seen",
    "last_position",
    "last_position_at",
    "last_speed_kmh",
    "last_heading_deg",
    "origin",
}
ALL_BUT_LIVE_STATE = ("devices", DEVICE_LIVE_STATE)
ALL_BUT_SIP_HA1 = ("gb_devices", {"sip_ha1"})
NARROW_EXPECTED: dict[str, dict[tuple[str, str], object]] = {
    "vision": {
        ("devices", "SELECT"): {"id", "kind", "region_code", "stream_url", "retired_at"},
        ("vision_cameras", "SELECT"): ALL,
        ("vision_references", "SELECT"): ALL,
        ("vision_references", "INSERT"): ALL,
        ("vision_references", "UPDATE"): ALL,
        ("inspection_rounds", "SELECT"): ALL,
        ("inspection_rounds", "INSERT"): ALL,
        ("inspection_rounds", "UPDATE"): ALL,
        ("inspection_results", "SELECT"): ALL,
        ("inspection_results", "INSERT"): ALL,
        ("inspection_results", "UPDATE"): ALL,
    },
    "gb28181": {
        ("devices", "SELECT"): ALL,
        ("devices", "INSERT"): ALL_BUT_LIVE_STATE,
        ("devices", "UPDATE"): ALL_BUT_LIVE_STATE,
        ("gb_devices", "SELECT"): ALL,
        ("gb_devices", "INSERT"): ALL_BUT_SIP_HA1,
        ("gb_devices", "UPDATE"): ALL_BUT_SIP_HA1,
        ("device_registrations", "SELECT"): ALL,
        ("device_registrations", "INSERT"): ALL,
        ("device_registrations", "UPDATE"): ALL,
        ("intersection_views", "SELECT"): ALL,
        ("intersection_views", "INSERT"): ALL,
        ("intersection_views", "DELETE"): ALL,
        ("intersections", "SELECT"): {"id", "geom"},
        ("regions", "SELECT"): {"code", "level", "retired_at"},
        ("region_parts", "SELECT"): ALL,
        ("village_area_parts", "SELECT"): {"village_code", "geom"},
        ("grids", "SELECT"): {"id", "level", "geom"},
        ("audit_log", "INSERT"): {"actor", "action", "entity", "entity_id", "detail"},
        ("pending_devices", "SELECT"): ALL,
        ("pending_devices", "INSERT"): ALL,
        ("pending_devices", "UPDATE"): ALL,
        ("federation_self", "SELECT"): {"hub_id"},  # federation_origin(), devices' default
    },
    "alarmrx": {
        ("sia_accounts", "SELECT"): ALL,
        ("devices", "SELECT"): {"id", "retired_at"},
        ("alarms", "SELECT"): {
            "id",
            "device_id",
            "kind",
            "state",
            "region_code",
            "raised_at",
            "detail",
        },
        ("alarms", "UPDATE"): {"detail"},
        ("alarm_events", "INSERT"): {"alarm_id", "state", "actor", "at", "note"},
        ("hub_events", "SELECT"): {"id"},
        ("hub_events", "INSERT"): {"kind", "region_code", "payload"},
        ("pending_devices", "SELECT"): ALL,
        ("pending_devices", "INSERT"): ALL,
        ("pending_devices", "UPDATE"): ALL,
        ("federation_self", "SELECT"): {"hub_id"},  # federation_origin(), alarm_events' default
    },
}
NARROW_SEQUENCES = {
    "vision": {"inspection_rounds_id_seq"},
    "gb28181": {"audit_log_id_seq"},
    "alarmrx": {"alarm_events_id_seq", "hub_events_id_seq"},
}
NARROW_TEMPORARY = {"gb28181"}  # geo.bulk stages a catalog's channels in a temp table

# Every relation of the schema, partitions included, but the extensions' (PostGIS's
# spatial_ref_sys and views are readable by everyone, as PostGIS installs them).
_RELATIONS = """pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT EXISTS (SELECT 1 FROM pg_depend d
  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"""
_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
_COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")


def _columns_of(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped",
        (table,),
    ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize("role", sorted(NARROW_EXPECTED))
def test_vision_and_gateway_roles_have_exactly_their_privileges(as_role, role: str) -> None:
    """What the role may do, as PostgreSQL decides it (table, column, sequence, database,
    schema and function privileges, through PUBLIC and memberships too), equals the list above."""
    conn = as_role(role)
    expected = NARROW_EXPECTED[role]
    tables = conn.execute(
        f"SELECT c.relname, p FROM {_RELATIONS} CROSS JOIN unnest(%s::text[]) AS p "
        "WHERE has_table_privilege(c.oid, p)",
        (list(_TABLE_PRIVILEGES),),
    ).fetchall()
    assert set(tables) == {key for key, cols in expected.items() if cols is ALL}
    columns = conn.execute(
        f"SELECT c.relname, a.attname, p FROM {_RELATIONS} JOIN pg_attribute a "
        "ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "CROSS JOIN unnest(%s::text[]) AS p WHERE has_column_privilege(c.oid, a.attnum, p)",
        (list(_COLUMN_PRIVILEGES),),
    ).fetchall()
    want = set()
    for (table, priv), cols in expected.items():
        if priv not in _COLUMN_PRIVILEGES:
            continue
        if cols is ALL:
            names = _columns_of(conn, table)
        elif isinstance(cols, tuple):  # (table, the columns it may not have)
            names = _columns_of(conn, table) - cols[1]
        else:
            names = set(cols)  # type: ignore[call-overload]
        want |= {(table, name, priv) for name in names}
    assert set(columns) - want == set(), "more than it needs"
    assert want - set(columns) == set(), "less than it needs"
    sequences = conn.execute(
        "SELECT c.relname, p FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS p "
        "WHERE n.nspname = 'public' AND c.relkind = 'S' AND has_sequence_privilege(c.oid, p)"
    ).fetchall()
    assert set(sequences) == {(s, "USAGE") for s in NARROW_SEQUENCES[role]}
    db = conn.execute(
        "SELECT has_database_privilege(current_database(), 'CONNECT'), "
        "has_database_privilege(current_database(), 'TEMPORARY'), "
        "has_database_privilege(current_database(), 'CREATE'), "
        "has_schema_privilege('public', 'CREATE'), "
        "(SELECT count(*) FROM pg_auth_members WHERE member = "
        "(SELECT oid FROM pg_roles WHERE rolname = current_user))"
    ).fetchone()
    assert db == (True, role in NARROW_TEMPORARY, False, False, 0)
    definers = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.prosecdef "
        "AND p.pronamespace = 'public'::regnamespace AND has_function_privilege(p.oid, 'EXECUTE') "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
        "AND d.objid = p.oid AND d.deptype = 'e')"  # PostGIS's (st_estimatedextent)
    ).fetchall()
    assert definers == []


def test_vision_role_runs_the_worker_and_inspection_rounds(role_engine, make_device, pg) -> None:
    from vision import store

    engine = role_engine("vision")
    county = "360123"
    pg.execute(
        "INSERT INTO regions (code, level, name) VALUES (%s, 3, 'roles test county') "
        "ON CONFLICT (code) DO NOTHING",
        (county + "000000",),
    )
    pg.commit()
    camera = make_device("ip_camera", region_code=county + "000000")
    assert camera in {c.id for c in store.camera_configs(engine, county)}
    store.save_reference(engine, camera, b"learned")
    store.save_reference(engine, camera, b"relearned")
    assert store.load_references(engine, [camera]) == {camera: b"relearned"}
    round_id, _ = store.open_round(engine, county, 1, resume=False)
    store.record_result(engine, round_id, camera, False, [{"code": "too_dark"}], b"jpeg", None)
    store.finish_round(engine, round_id, "done")
    assert store.round_summary(engine, round_id)["by_fault"] == {"too_dark": 1}
    for sql in (
        f"DELETE FROM vision_references WHERE device_id = '{camera}'",  # approval: an admin's
        "INSERT INTO vision_cameras (device_id, config) VALUES ('x', '{}')",  # settings: admin's
        "SELECT name FROM devices",
        "UPDATE devices SET stream_url = 'rtsp://elsewhere/'",
        "SELECT username FROM users",
        "SELECT id FROM alarms",
        "INSERT INTO hub_events (kind, payload) VALUES ('x', '{}')",
    ):
        _refused_sa(engine, sql)


def test_gb28181_role_registers_channels_but_never_passwords_or_live_state(
    role_engine, make_device
) -> None:
    from gb28181.manscdp import CatalogItem
    from gb28181.store import GatewayStore, add_pending

    engine = role_engine("gb28181")
    store = GatewayStore(engine, gateway="gw-roles")
    nvr = make_device(
        "ip_camera", device_id=compose("360121", 118, random.randrange(1, 10**6)).code
    )
    channel = compose("360121", 131, random.randrange(1, 10**6)).code
    parent = store.lookup(nvr)
    assert parent is not None
    store.save_registrations([(nvr, "udp", "127.0.0.1:5060", time.time() + 3600, 2016)])
    store.save_info(nvr, {"manufacturer": "Acme", "model": "N8", "firmware": "1.0"})
    out = store.save_catalog(parent, [CatalogItem(channel, name="gate", status="ON")])
    assert out["registered"] == 1 and out["rejected"] == []
    assert channel in store.channels_of(nvr) and nvr in store.fronted()
    gone = store.save_catalog(parent, [CatalogItem(channel, event="DEL")])
    assert gone["deleted"] == 1
    unknown = compose("360121", 132, random.randrange(1, 10**6)).code
    assert add_pending(engine, unknown, f"gw/v1/{unknown}/heartbeat", b"{}")
    for sql in (
        f"UPDATE gb_devices SET sip_ha1 = 'x' WHERE device_id = '{nvr}'",
        f"UPDATE devices SET status = 'online' WHERE id = '{nvr}'",
        f"UPDATE devices SET last_seen = now() WHERE id = '{nvr}'",
        f"DELETE FROM devices WHERE id = '{nvr}'",
        "SELECT password_hash FROM users",
        "SELECT id FROM alarms",
        "SELECT aes_key FROM sia_accounts",
        "SELECT nonce FROM device_mqtt_nonces",
        "INSERT INTO hub_events (kind, payload) VALUES ('x', '{}')",
        "UPDATE regions SET name = 'x'",
    ):
        _refused_sa(engine, sql)


def test_alarmrx_role_notes_restorals_but_changes_nothing_else(
    role_engine, make_device, pg
) -> None:
    from alarmrx.store import SiaStore
    from gb28181.store import add_pending

    panel = make_device("alarm_input")
    account = f"{random.randrange(16**6):06X}"
    SiaStore(role_engine("owner")).set_account(account, panel, None)  # an admin's command
    alarm_id = pg.execute(
        "INSERT INTO alarms (device_id, msg_id, kind, severity, raised_at, last_raised_at) "
        "VALUES (%s, 'sia-roles', 'intrusion', 3, now(), now()) RETURNING id",
        (panel,),
    ).fetchone()[0]
    pg.commit()
    engine = role_engine("alarmrx")
    store = SiaStore(engine)
    assert (account, panel, None) in store.accounts()
    assert store.annotate_restoral(panel, "intrusion", "restored", {"sia": {}}) == alarm_id
    note = pg.execute(
        "SELECT note FROM alarm_events WHERE alarm_id = %s AND actor = 'sia-dc09'", (alarm_id,)
    ).fetchone()
    assert note == ("restored",)
    unknown = compose("360121", 134, random.randrange(1, 10**6)).code
    assert add_pending(engine, unknown, f"gw/v1/{unknown}/heartbeat", b"{}")
    with pytest.raises(sqlalchemy.exc.ProgrammingError):
        store.set_account(account, panel, "0123456789abcdef")  # an admin's, not the receiver's
    for sql in (
        f"UPDATE alarms SET state = 'resolved' WHERE id = {alarm_id}",
        f"DELETE FROM alarms WHERE id = {alarm_id}",
        "INSERT INTO alarms (device_id, msg_id, kind, severity, raised_at, last_raised_at) "
        f"VALUES ('{panel}', 'forged', 'x', 1, now(), now())",
        f"UPDATE devices SET status = 'online' WHERE id = '{panel}'",
        "SELECT name FROM devices",
        "SELECT payload FROM hub_events",
        "SELECT username FROM users",
        "UPDATE sia_accounts SET aes_key = NULL",
    ):
        _refused_sa(engine, sql)
