"""The test databases: the migrated template (its schema cached across runs), its clones, and
used clones emptied back to the template's state.

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
import io
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from class_management_service import migrations
from class_management_service.db import asyncpg_dsn
from local_infra.pg_cluster import clean_env, find_bin_dir

MIGRATIONS = Path(migrations.__file__).parent


def create_template(admin_url: str, template_url: str, cache_dir: Path, alongside_url: str) -> bool:
    """(Re)create the template database at ``template_url``: loaded from the dump a previous
    session cached for the same migrations, else migrated and dumped for the next session.

    With a cached dump, the database at ``alongside_url`` is made from it too, at the same time
    (two ``CREATE DATABASE`` side by side took about half as long as one after the other): the
    first test's, equal to a clone of the template. Returns whether it was made."""

    async def fresh(url: str, dump: str | None) -> None:
        name = make_url(url).database
        connection = await asyncpg.connect(asyncpg_dsn(admin_url))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            # FILE_COPY: for a database this small faster than PostgreSQL 15's WAL_LOG default.
            await connection.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        finally:
            await connection.close()
        if dump is not None:
            await load(url, dump)

    async def create() -> str | None:
        key = cache_key(await server_version(admin_url))
        dump = cached_dump(cache_dir, key)
        if dump is None:
            await fresh(template_url, None)
            return key
        await asyncio.gather(fresh(template_url, dump), fresh(alongside_url, dump))
        return None

    # Alembic's env runs its own event loop, so keep it and ours off the caller's thread.
    with ThreadPoolExecutor(1) as pool:
        missing = pool.submit(asyncio.run, create()).result()
        if missing is not None:
            from class_management_service.migrations import runner  # Alembic: only on a miss

            pool.submit(runner.upgrade, template_url).result()
            save(cache_dir, missing, template_url)
    return missing is None


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

# What a test can change in its database besides rows, as one digest: the schema, privileges,
# settings and prepared transactions. A database whose digest still equals the template's can
# be made fresh again by emptying it; any other is dropped.
_SCHEMA_DIGEST = """
WITH user_namespaces AS (
  SELECT oid FROM pg_namespace
   WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
)
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
  SELECT format('namespace %s %s', nspname, nspacl) FROM pg_namespace
   WHERE oid IN (SELECT oid FROM user_namespaces)
  UNION ALL
  SELECT format('relation %s %s %s %s %s %s', oid::regclass, relkind, relpersistence,
                relrowsecurity, reloptions, relacl)
    FROM pg_class WHERE relnamespace IN (SELECT oid FROM user_namespaces)
  UNION ALL
  SELECT format('column %s %s %s %s %s %s %s %s', a.attrelid::regclass, a.attnum, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
                a.attgenerated, pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE a.attnum > 0 AND c.relnamespace IN (SELECT oid FROM user_namespaces)
  UNION ALL
  SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE connamespace IN (SELECT oid FROM user_namespaces)
  UNION ALL
  SELECT format('index %s', pg_get_indexdef(indexrelid)) FROM pg_index
   WHERE indrelid IN (SELECT oid FROM pg_class
                       WHERE relnamespace IN (SELECT oid FROM user_namespaces))
  UNION ALL
  SELECT format('trigger %s %s', pg_get_triggerdef(oid), tgenabled) FROM pg_trigger
   WHERE NOT tgisinternal
  UNION ALL
  SELECT format('routine %s %s %s %s', oid::regprocedure, prokind, md5(prosrc), proacl)
    FROM pg_proc WHERE pronamespace IN (SELECT oid FROM user_namespaces)
  UNION ALL
  SELECT format('type %s %s', oid::regtype, typtype) FROM pg_type
   WHERE typnamespace IN (SELECT oid FROM user_namespaces)
  UNION ALL
  SELECT format('enum %s %s %s', enumtypid::regtype, enumsortorder, enumlabel) FROM pg_enum
  UNION ALL
  SELECT format('view %s %s', oid::regclass, pg_get_viewdef(oid)) FROM pg_class
   WHERE relkind IN ('v', 'm') AND relnamespace IN (SELECT oid FROM user_namespaces)
  UNION ALL
  SELECT format('sequence %s %s %s %s %s %s %s', seqrelid::regclass, seqtypid, seqstart,
                seqincrement, seqmax, seqmin, seqcycle) FROM pg_sequence
  UNION ALL
  SELECT format('policy %s %s %s', polrelid::regclass, polname, pg_get_expr(polqual, polrelid))
    FROM pg_policy
  UNION ALL SELECT format('rule %s %s', rulename, definition) FROM pg_rules
   WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL SELECT format('statistics %s', stxname) FROM pg_statistic_ext
  UNION ALL SELECT format('extension %s %s', extname, extversion) FROM pg_extension
  UNION ALL SELECT format('event trigger %s', evtname) FROM pg_event_trigger
  UNION ALL SELECT format('publication %s', pubname) FROM pg_publication
  UNION ALL SELECT format('large object %s', oid) FROM pg_largeobject_metadata
  UNION ALL SELECT format('setting %s %s', setrole, setconfig) FROM pg_db_role_setting
   WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
  UNION ALL SELECT format('database %s %s', datconnlimit, datacl) FROM pg_database
   WHERE datname = current_database()
  UNION ALL SELECT format('prepared transaction %s', gid) FROM pg_prepared_xacts
   WHERE database = current_database()
) AS items(item)
"""
_TABLES = """
WITH user_namespaces AS (
  SELECT oid FROM pg_namespace
   WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
)
SELECT relnamespace::regnamespace::text, relname FROM pg_class
 WHERE relkind IN ('r', 'p') AND relnamespace IN (SELECT oid FROM user_namespaces)
"""
# Empties what the test wrote (a table never written to has no pages, as in the template, and
# is left alone), forgets the statistics an ANALYZE left, and has the reset's own writes counted
# when its transaction ends, so that the pg_stat_reset() that follows forgets them too. The
# template's seed rows are copied back and its sequences rewound after it.
_EMPTY = """
SET session_replication_role = replica;  -- seed rows go back without triggers, as pg_dump's do
DO $$
DECLARE
  written text;
BEGIN
  SELECT string_agg(oid::regclass::text, ', ') INTO written FROM pg_class
   WHERE relkind = 'r' AND pg_relation_size(oid) > 0 AND relnamespace IN (
     SELECT oid FROM pg_namespace
      WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema');
  IF written IS NOT NULL THEN
    EXECUTE 'TRUNCATE ' || written || ' CASCADE';
  END IF;
END
$$;
DELETE FROM pg_statistic WHERE starelid >= 16384;  -- FirstNormalObjectId: user objects
SELECT pg_stat_force_next_flush();
"""
_SEQUENCES = """
SELECT format('SELECT setval(%L, %s, %L)', format('%I.%I', schemaname, sequencename),
              coalesce(last_value, start_value), last_value IS NOT NULL)
  FROM pg_sequences
"""


async def schema_digest(connection: asyncpg.Connection) -> str:
    digest: str = await connection.fetchval(_SCHEMA_DIGEST)
    return digest


@dataclass(frozen=True)
class FreshState:
    """What a database cloned from the template holds, read from the template once: the digest
    of its schema, its rows (the migrations' seed data) and how to empty a used database back
    to it."""

    digest: str
    reset: str  # empties the tables, rewinds the sequences, forgets statistics
    rows: tuple[tuple[str, str, bytes], ...]  # (schema, table, COPY text) of non-empty tables

    @classmethod
    async def of(cls, connection: asyncpg.Connection) -> FreshState:
        digest = await schema_digest(connection)
        rows = []
        for schema, table in await connection.fetch(_TABLES):
            copied = io.BytesIO()
            await connection.copy_from_table(table, schema_name=schema, output=copied)
            if copied.getvalue():
                rows.append((schema, table, copied.getvalue()))
        rewind = [row[0] for row in await connection.fetch(_SEQUENCES)]
        return cls(digest, ";\n".join([_EMPTY, *rewind]), tuple(rows))


class DatabaseClones:
    """Hands out databases equal to a fresh clone of the migrated template, one ahead.

    A used database whose schema, privileges and settings are still the template's (the
    digest above) is emptied back to the template's state (its tables truncated and the seed
    rows copied back, sequences rewound, statistics and counters forgotten): cheaper than
    ``CREATE DATABASE``, which copies ~8 MB of catalogs and waits for two checkpoints. Any
    other is dropped and a new clone made. Both happen in the background while the next test
    runs on the database made ready before it, so a test rarely waits.
    """

    def __init__(self, admin: asyncpg.Pool, admin_url: str, template: str, fresh: FreshState):
        self._admin = admin
        self._dsn = asyncpg_dsn(admin_url)
        self._template = template
        self._fresh = fresh
        # Databases on their way to being ready, in the order they are handed out; each task
        # gives the database's name, or None if it could not be made (the server went away).
        self._ahead: list[asyncio.Task[str | None]] = []
        self._drops: set[asyncio.Task[None]] = set()

    async def _clone(self) -> str:
        name = f"test_{uuid.uuid4().hex[:16]}"
        # FILE_COPY: for a small template much faster than PostgreSQL 15's WAL_LOG default.
        await self._admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{self._template}" STRATEGY FILE_COPY'
        )
        return name

    async def _clone_ahead(self) -> str | None:
        # tests/local_infra stops and restarts the session's server: a clone it interrupts
        # is simply not handed out.
        with contextlib.suppress(*_SERVER_WENT_AWAY):
            return await self._clone()
        return None

    async def _emptied(self, name: str) -> str | None:
        """``name`` emptied back to the template's state, or None (dropped) if it cannot be."""
        try:
            # Its sessions first (a pool the test leaked), like DROP DATABASE ... WITH (FORCE);
            # waited for, so that their locks and statistics are gone before the reset.
            await self._admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            connection = await asyncpg.connect(self._dsn, database=name)
            try:
                if await schema_digest(connection) != self._fresh.digest:
                    raise _Changed
                async with connection.transaction():
                    await connection.execute(self._fresh.reset)
                    for schema, table, rows in self._fresh.rows:
                        await connection.copy_to_table(
                            table, schema_name=schema, source=io.BytesIO(rows)
                        )
                await connection.execute("SELECT pg_stat_reset()")
                # Gone before the database is handed out: a test may count its sessions.
                await self._admin.execute(
                    "SELECT pg_terminate_backend($1, 5000)", connection.get_server_pid()
                )
            finally:
                connection.terminate()
        except (_Changed, asyncpg.PostgresError, *_SERVER_WENT_AWAY):
            await self._drop(name)
            return None
        return name

    async def _drop(self, name: str) -> None:
        # If the server restarted meanwhile, a leftover clone dies with the throwaway cluster.
        with contextlib.suppress(*_SERVER_WENT_AWAY):
            await self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @classmethod
    @contextlib.asynccontextmanager
    async def of(
        cls, admin_url: str, template: str, *, ready: Sequence[str]
    ) -> AsyncIterator[DatabaseClones]:
        """Clones of ``template`` made over a small admin pool, after the databases ``ready``
        (equal to clones of it, made with it); the last ones dropped at the end."""
        connection = await asyncpg.connect(asyncpg_dsn(admin_url), database=template)
        try:
            fresh = await FreshState.of(connection)
        finally:
            await connection.close()  # CREATE DATABASE refuses a template that is in use
        admin = await asyncpg.create_pool(asyncpg_dsn(admin_url), min_size=1, max_size=3)
        clones = cls(admin, admin_url, template, fresh)
        clones._ahead = [asyncio.ensure_future(_given(name)) for name in ready]
        try:
            yield clones
            await clones.close()
        finally:
            await admin.close()

    async def take(self, *, more: bool) -> str:
        """A database for a test; ``more``: another test will ask after this one, so one is
        made ready meanwhile (for the last test, making it would only be work to undo)."""
        name = None
        while name is None and self._ahead:
            name = await self._ahead.pop(0)
        if name is None:
            name = await self._clone()
        if more and not self._ahead:
            self._ahead.append(asyncio.ensure_future(self._clone_ahead()))
        return name

    def release(self, name: str, *, more: bool) -> None:
        """Give back a test's database: emptied for the next test if ``more`` will ask."""
        if more:
            self._ahead.append(asyncio.ensure_future(self._emptied(name)))
        else:
            self._drops.add(asyncio.ensure_future(self._drop(name)))

    async def close(self) -> None:
        ahead, self._ahead = self._ahead, []
        names = await asyncio.gather(*ahead)
        await asyncio.gather(*self._drops, *(self._drop(name) for name in names if name))


async def _given(name: str) -> str:
    return name


class _Changed(Exception):
    """A used database no longer has the template's schema, privileges or settings."""
