"""Every test gets a database as fresh as a new clone of the migrated template, also when the
harness (``tests/databases.py``) hands out a used one again after emptying it."""

from __future__ import annotations

import io
from typing import Any

import asyncpg

from class_management_service.db import asyncpg_dsn
from tests.databases import DatabaseClones, schema_digest


async def _state(admin_url: str, name: str) -> dict[str, Any]:
    """What a test could observe of a database: schema, rows, table sizes, sequences and
    statistics."""
    connection = await asyncpg.connect(asyncpg_dsn(admin_url), database=name)
    try:
        tables = await connection.fetch(
            "SELECT relname, pg_relation_size(oid) AS size FROM pg_class"
            " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY relname"
        )
        rows = {}
        for table in tables:
            copied = io.BytesIO()
            await connection.copy_from_table(table["relname"], output=copied)
            rows[table["relname"]] = (table["size"], copied.getvalue())
        return {
            "schema": await schema_digest(connection),
            "rows": rows,
            "sequences": await connection.fetch(
                "SELECT sequencename, last_value FROM pg_sequences ORDER BY sequencename"
            ),
            "statistics": await connection.fetchval(
                "SELECT count(*) FROM pg_statistic WHERE starelid >= 16384"
            ),
        }
    finally:
        await connection.close()


async def _run(admin_url: str, name: str, sql: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(admin_url), database=name)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def test_a_used_database_comes_back_only_as_fresh_as_a_new_clone(
    postgres_admin_url: str, migrated_template: str
) -> None:
    async with DatabaseClones.of(postgres_admin_url, migrated_template, ready=[]) as clones:
        first = await clones.take(more=True)
        fresh = await _state(postgres_admin_url, first)
        # Rows written, seed rows changed, a sequence advanced, statistics gathered; and a
        # session left open, as a leaked pool would.
        await _run(
            postgres_admin_url,
            first,
            "UPDATE courses SET name = name || ' (changed)';"
            "INSERT INTO alembic_version VALUES ('extra');"
            "SELECT nextval(pg_get_serial_sequence('association_history', 'id'));"
            "ANALYZE courses",
        )
        leaked = await asyncpg.connect(asyncpg_dsn(postgres_admin_url), database=first)
        assert await _state(postgres_admin_url, first) != fresh

        clones.release(first, more=True)
        second = await clones.take(more=True)  # the one made ahead
        clones.release(second, more=True)
        again = await clones.take(more=True)

        assert again == first
        assert leaked.is_closed() or not await _alive(leaked)
        assert await _state(postgres_admin_url, again) == fresh

        # A changed schema cannot be emptied back: that database is dropped, never handed out.
        await _run(postgres_admin_url, again, "ALTER TABLE courses ADD COLUMN extra int")
        clones.release(again, more=True)
        assert await clones.take(more=True) == second
        replacement = await clones.take(more=True)

        assert replacement not in (first, second)
        assert await _state(postgres_admin_url, replacement) == fresh
        admin = await asyncpg.connect(asyncpg_dsn(postgres_admin_url))
        try:
            names = await admin.fetch("SELECT datname FROM pg_database")
        finally:
            await admin.close()
        assert first not in {row["datname"] for row in names}


async def _alive(connection: asyncpg.Connection) -> bool:
    try:
        await connection.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True
