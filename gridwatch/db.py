"""Database engine, sessions, database creation and alembic migrations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from gridwatch.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, future=True)


def get_engine(
    settings: Settings | None = None, url: str | None = None, role: str = "owner"
) -> Engine:
    """The shared engine for the configured database as `role` (gridwatch/dbroles.py), or an
    explicit URL."""
    settings = settings or get_settings()
    return _engine_for(url or settings.db_url(role=role))


# A pooled read connection given back less than this long ago is handed out again without a
# ping: a busy API reuses its connections within milliseconds, and a ping (one round trip) cost
# about as much of the API's CPU as a small read (bench/RESULTS.md); an idle one is pinged.
IDLE_PING_S = 2.0

# Read connections per API worker (no overflow; see read_only_async_engine).
READ_POOL_SIZE = 20


def read_only_async_engine(url: str | URL) -> AsyncEngine:
    """An asyncio engine (psycopg's async driver) whose connections cannot write: every statement
    is its own read-only transaction (autocommit, default_transaction_read_only), so a read costs
    no BEGIN and no ROLLBACK round trip. Bound to the event loop that first uses it.

    A connection idle for IDLE_PING_S or more is pinged before it is handed out (a dead one is
    replaced, as with pool_pre_ping); one back from a request just now is not. A connection that
    fails all the same (the server restarted meanwhile) fails that read and is replaced, and
    every other connection made before is replaced at its next checkout.

    The pool has no overflow: a read beyond READ_POOL_SIZE at once waits for a pooled connection.
    Overflow connections are closed as soon as the pool is full again, so under load every burst
    of concurrent reads opened new ones (a backend forked and a scram-sha-256 exchange each: one
    per ~22 reads in bench/api_load_bench, ~15% of the API's CPU per read)."""
    from sqlalchemy import event
    from sqlalchemy.exc import DisconnectionError
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(
        url,
        pool_size=READ_POOL_SIZE,
        max_overflow=0,
        isolation_level="AUTOCOMMIT",
        connect_args={"options": "-c default_transaction_read_only=on"},
    )
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _back(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return  # just made, or just back from a request
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc

    return engine


@contextmanager
def session_scope(settings: Settings | None = None, url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    factory = sessionmaker(bind=get_engine(settings, url), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def _local_role(url: str) -> bool:
    """True when url names one of the local cluster's hub roles (not an external account)."""
    settings = get_settings()
    user = make_url(url).username or ""
    return settings.local_database and user.startswith("gridwatch_")


def _as_admin(url: str) -> str:
    """The same database as the local cluster's superuser when url is a hub role's, else url."""
    if not _local_role(url):
        return url
    return get_settings().db_url(make_url(url).database, role="admin")


def ensure_database(url: str) -> bool:
    """Create the database named in url if it is missing, and enable PostGIS; True if created.
    On the local cluster this is the superuser's work, whichever role url names."""
    target = make_url(_as_admin(url))
    admin = target.set(database="postgres")
    created = False
    engine = create_engine(admin, isolation_level="AUTOCOMMIT", future=True)
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
                created = True
    finally:
        engine.dispose()
    engine = create_engine(target, isolation_level="AUTOCOMMIT", future=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    finally:
        engine.dispose()
    return created


def drop_database(url: str) -> None:
    """Drop the database named in url (used for throw-away test databases)."""
    target = make_url(_as_admin(url))
    engine = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    finally:
        engine.dispose()


def alembic_config(url: str) -> Config:
    """An alembic Config pointing at gridwatch's migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str | None = None) -> None:
    """Create the database if needed and upgrade it to every head (each package's branch)."""
    url = url or get_settings().db_url()
    ensure_database(url)
    local = _local_role(url)
    if local:  # the roles first, then alembic as the owner, then what each role may do
        from gridwatch.dbroles import apply_grants, provision_roles
        from gridwatch.secrets import load_secrets

        settings = get_settings()
        dbname = make_url(url).database
        provision_roles(_as_admin(url), load_secrets(settings.home)["pg_roles"])
        url = settings.db_url(dbname, role="owner")
    command.upgrade(alembic_config(url), "heads")
    if local:
        apply_grants(url)


def current_revisions(url: str | None = None) -> set[str]:
    """The revisions the database is at (empty when never migrated)."""
    url = url or get_settings().db_url()
    engine = get_engine(url=url)
    with engine.connect() as conn:
        has_table = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
        if not has_table:
            return set()
        return set(schema_heads(conn))


def schema_heads(conn: Connection) -> list[str]:
    """The migration heads the database is at (alembic's own table, so raw SQL: it is not in
    gridwatch.schema); raises when the database was never migrated."""
    return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
