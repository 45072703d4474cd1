"""gridwatch/schema.py describes exactly what the migrations build (alembic's comparison)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, text

from gridwatch import schema


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Leave out what schema.py deliberately does not describe: PostGIS's own tables, alembic's
    version table, the monthly partitions of `positions` (made at run time) and views."""
    if type_ != "table":
        table = getattr(obj, "table", None)
        name = table.name if table is not None else name
    if name in schema.SCHEMA_IGNORED_TABLES or name in schema.SCHEMA_VIEWS:
        return False
    return not (name or "").startswith(schema.POSITIONS_PARTITION_PREFIX)


def schema_diff(conn) -> list:
    """alembic's autogenerate differences between the database and schema.metadata."""
    ctx = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_object": include_object,
        },
    )
    return compare_metadata(ctx, schema.metadata)


def test_schema_matches_the_migrated_database(engine) -> None:
    with engine.connect() as conn:
        diff = schema_diff(conn)
    hint = "a new migration must also be described in gridwatch/schema.py"
    assert diff == [], f"schema.py and the migrations differ ({hint}):\n" + "\n".join(
        map(str, diff)
    )


def test_check_constraints_match(engine) -> None:
    """alembic does not compare CHECK constraints: the described ones are the database's, by name."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.conrelid::regclass::text, c.conname "
                "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                "WHERE c.contype = 'c' AND n.nspname = 'public'"
            )
        ).all()
    in_db = {(t, name) for t, name in rows if t in schema.metadata.tables}
    described = {
        (t.name, c.name)
        for t in schema.metadata.tables.values()
        for c in t.constraints
        if isinstance(c, CheckConstraint)
    }
    assert described == in_db


def test_comparison_sees_a_drift(engine) -> None:
    """The comparison is not blind: a column missing from the description is reported."""
    from sqlalchemy import Column, Text

    extra = schema.metadata.tables["dead_letters"]
    col = Column("guard_probe", Text)
    extra.append_column(col)
    try:
        with engine.connect() as conn:
            diff = schema_diff(conn)
        assert any("guard_probe" in str(d) for d in diff)
    finally:
        extra._columns.remove(col)


@pytest.mark.parametrize("table", sorted(schema.metadata.tables))
def test_every_table_has_a_primary_key(table: str) -> None:
    assert schema.metadata.tables[table].primary_key.columns


def test_api_job_model_lists_the_listed_columns() -> None:
    """The audit-job response model has exactly the columns the listing selects."""
    from api.routers.audits import JOB_COLUMNS, AuditJob

    assert set(AuditJob.model_fields) == {c.name for c in JOB_COLUMNS}
