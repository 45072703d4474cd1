"""Least privilege in the database: the services' roles are no superusers, the ingest role cannot
drop, alter or read accounts, the auditor cannot read password hashes, and the partition
function works for ingest without superuser rights."""

from __future__ import annotations

import psycopg
import pytest

from gridwatch.settings import get_settings

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


def _refused(conn: psycopg.Connection, sql: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql)
    conn.rollback()


@pytest.mark.parametrize("role", ["owner", "api", "ingest", "auditor"])
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
