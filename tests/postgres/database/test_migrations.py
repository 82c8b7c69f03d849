"""The migrations are the schema: they must agree with the models and round-trip cleanly."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from class_management_service.courses.reference import COURSES
from class_management_service.migrations import runner
from class_management_service.models import Base


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        diff = await connection.run_sync(_schema_diff)
    assert diff == []


async def test_courses_are_seeded_by_migration(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        rows = (
            await connection.execute(text("SELECT id, course_code, name, language FROM courses"))
        ).all()
    assert sorted((str(r.id), r.course_code, r.name, r.language) for r in rows) == sorted(
        (str(c.id), c.course_code.value, c.name, c.language) for c in COURSES
    )


async def test_downgrade_to_base_and_upgrade_again(database_url: str, engine: AsyncEngine) -> None:
    # Alembic's env runs its own event loop: keep it off the test loop's thread.
    with ThreadPoolExecutor(1) as pool:
        await asyncio.wrap_future(pool.submit(runner.downgrade, database_url, "base"))
        async with engine.connect() as connection:
            tables = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
        assert tables == 0
        await asyncio.wrap_future(pool.submit(runner.upgrade, database_url))
    await engine.dispose()  # cached statements refer to the dropped tables
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM courses")) == len(COURSES)
        diff = await connection.run_sync(_schema_diff)
    assert diff == []
