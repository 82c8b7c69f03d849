"""The test databases: the migrated template (its schema cached across runs) and its clones.

Running the migrations cost every pytest session its slowest fixed step: importing Alembic
(~0.3 s of CPU) and running every migration (~0.7 s). The schema they produce only changes when
a migration does, so the first session dumps
the migrated template (``pg_dump``) into ``<local-infra root>/cache/`` under a key made of the
migration files' contents and the server's version, and later sessions load that dump instead.
A changed or new migration changes the key, so a stale schema is never loaded.

Imported by the fixtures that need it, not by the conftest: a unit-test run never pays for
asyncpg and SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from class_management_service import migrations
from class_management_service.db import asyncpg_dsn
from local_infra.pg_cluster import clean_env, find_bin_dir

MIGRATIONS = Path(migrations.__file__).parent


def create_template(admin_url: str, template_url: str, cache_dir: Path) -> None:
    """(Re)create the template database at ``template_url``: loaded from the dump a previous
    session cached for the same migrations, else migrated and dumped for the next session."""
    name = make_url(template_url).database

    async def create() -> str | None:
        connection = await asyncpg.connect(asyncpg_dsn(admin_url))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            # FILE_COPY: for a database this small faster than PostgreSQL 15's WAL_LOG default.
            await connection.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        finally:
            await connection.close()
        key = cache_key(await server_version(template_url))
        dump = cached_dump(cache_dir, key)
        if dump is None:
            return key
        await load(template_url, dump)
        return None

    # Alembic's env runs its own event loop, so keep it and ours off the caller's thread.
    with ThreadPoolExecutor(1) as pool:
        missing = pool.submit(asyncio.run, create()).result()
        if missing is not None:
            from class_management_service.migrations import runner  # Alembic: only on a miss

            pool.submit(runner.upgrade, template_url).result()
            save(cache_dir, missing, template_url)


def cache_key(server_version: str) -> str:
    """The migrations' contents and the server's version (a dump is loaded by the server
    version that wrote it)."""
    digest = hashlib.sha256(server_version.encode())
    for path in sorted(MIGRATIONS.rglob("*.py")):
        digest.update(str(path.relative_to(MIGRATIONS)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _executable(dump: str) -> str:
    # pg_dump's psql meta-commands (\restrict, \unrestrict) mean nothing to the server.
    return "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))


async def server_version(url: str) -> str:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        version: str = await connection.fetchval("SHOW server_version_num")
    finally:
        await connection.close()
    return version


def cached_dump(cache_dir: Path, key: str) -> str | None:
    try:
        return (cache_dir / f"test-schema-{key}.sql").read_text()
    except FileNotFoundError:
        return None


async def load(url: str, dump: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(_executable(dump))
    finally:
        await connection.close()


def save(cache_dir: Path, key: str, url: str) -> None:
    """Dump the database at ``url`` into the cache. Skipped where no pg_dump is installed or it
    cannot dump this server (an external one of a newer version): each session then migrates."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return
    argv = [str(bin_dir / "pg_dump"), "--no-owner", "--no-privileges", "--inserts"]
    result = subprocess.run(
        [*argv, f"--dbname={asyncpg_dsn(url)}"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Written under a private name and renamed: a concurrent session never reads half a dump.
    staging = cache_dir / f".test-schema-{key}.{os.getpid()}.tmp"
    staging.write_text(result.stdout)
    staging.rename(cache_dir / f"test-schema-{key}.sql")


# What a statement on the admin pool raises when the server stops or restarts under it.
_SERVER_WENT_AWAY = (
    asyncpg.exceptions.OperatorInterventionError,  # "terminating connection due to ..."
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.InterfaceError,  # the connection closed in the middle of the statement
    OSError,
)


class DatabaseClones:
    """Hands out databases cloned from the migrated template, one clone ahead.

    Cloning (a file copy plus a checkpoint) and dropping cost ~0.1 s each; the next clone is
    made while the current test runs and the old one is dropped in the background, so a test
    rarely waits for either.
    """

    def __init__(self, admin: asyncpg.Pool, template: str) -> None:
        self._admin = admin
        self._template = template
        self._next: asyncio.Task[str] | None = None
        self._drops: set[asyncio.Task[None]] = set()

    async def _clone(self) -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        # FILE_COPY: for a small template much faster than PostgreSQL 15's WAL_LOG default.
        await self._admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{self._template}" STRATEGY FILE_COPY'
        )
        return name

    async def _drop(self, name: str) -> None:
        # If the server restarted meanwhile, a leftover clone dies with the throwaway cluster.
        with contextlib.suppress(*_SERVER_WENT_AWAY):
            await self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _made_ahead(self) -> str | None:
        """The clone made ahead, unless the server went away while it was being made
        (``tests/local_infra`` stops and restarts the session's server)."""
        pending, self._next = self._next, None
        if pending is None:
            return None
        try:
            return await pending
        except _SERVER_WENT_AWAY:
            return None

    @classmethod
    @contextlib.asynccontextmanager
    async def of(cls, admin_url: str, template: str) -> AsyncIterator[DatabaseClones]:
        """Clones of ``template`` made over a small admin pool; the last ones dropped at the end."""
        admin = await asyncpg.create_pool(asyncpg_dsn(admin_url), min_size=1, max_size=3)
        clones = cls(admin, template)
        try:
            yield clones
            await clones.close()
        finally:
            await admin.close()

    async def take(self) -> str:
        name = await self._made_ahead() or await self._clone()
        self._next = asyncio.ensure_future(self._clone())
        return name

    def release(self, name: str) -> None:
        task = asyncio.ensure_future(self._drop(name))
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

    async def close(self) -> None:
        name = await self._made_ahead()
        if name is not None:
            self.release(name)
        await asyncio.gather(*self._drops)
