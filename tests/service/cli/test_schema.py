"""``migrate`` and ``downgrade`` as subprocesses on an empty database (``run`` migrates too:
tests/service/test_service_process.py; every revision's round trip: the migration tests)."""

from __future__ import annotations

import asyncpg

from class_management_service.db import asyncpg_dsn
from tests.service.cli.conftest import CliRunner


async def _revision(database_url: str) -> str | None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        if not await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL"):
            return None
        revision: str | None = await connection.fetchval("SELECT version_num FROM alembic_version")
        return revision
    finally:
        await connection.close()


async def test_migrate_to_the_latest_revision_then_downgrade_to_base(
    cli: CliRunner, empty_database_url: str
) -> None:
    env = {"DATABASE_URL": empty_database_url}
    migrated = await cli("migrate", env=env)
    assert migrated.returncode == 0, migrated
    assert await _revision(empty_database_url) is not None

    to_base = await cli("downgrade", "base", env=env)
    assert to_base.returncode == 0, to_base
    assert await _revision(empty_database_url) is None
