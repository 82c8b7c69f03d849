"""``kill -9`` of PostgreSQL in the middle of a stream (issue 12 row 2), on a server of its own.

A crash gives the server no chance to write what it holds in memory. The local servers run
``synchronous_commit=off``: a commit was acknowledged before its WAL left the server's memory,
so the consumer committed Kafka offsets past rows that the crash then took with it (1-15 of 400
events lost in three runs). The service turns ``synchronous_commit`` on for its own connections:
whatever it acknowledged survives, and nothing is lost.

The test starts a PostgreSQL of its own (same settings as the session's) and kills that one, so
no other test's server goes down.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from class_management_service.db import asyncpg_dsn
from class_management_service.migrations import runner
from local_infra.ports import free_port
from local_infra.postgres import PostgresServer
from local_infra.session import SessionInfra
from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport, fleet_on
from tests.reliability.harness import (
    FaultMidStream,
    StreamProducer,
    association_count,
    seeded_stream,
    verify,
    wait_committed_to_end,
    wait_for_rows,
)

DATABASE = "class_management"


@pytest.fixture
async def own_postgres(
    local_infra_session: SessionInfra, postgres_binaries: Path
) -> AsyncIterator[PostgresServer]:
    """A PostgreSQL server for this test only, with one migrated database."""
    server = PostgresServer(
        local_infra_session.directory / f"postgres-kill-{uuid.uuid4().hex[:8]}",
        free_port(),
        cache_dir=postgres_binaries,
    )
    await asyncio.to_thread(server.start)
    try:
        admin = await asyncpg.connect(asyncpg_dsn(server.url))
        try:
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await admin.close()
        # Alembic's env runs its own event loop: keep it off the test loop's thread.
        with ThreadPoolExecutor(1) as pool:
            await asyncio.wrap_future(pool.submit(runner.upgrade, server.url_for(DATABASE)))
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture
async def fleet(
    own_postgres: PostgresServer,
    redis_url: str,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> AsyncIterator[Fleet]:
    """The conftest's fleet, on this test's own PostgreSQL."""
    database_url = own_postgres.url_for(DATABASE)
    async with fleet_on(database_url, redis_url, kafka_bootstrap, unique_name, tmp_path) as fleet:
        yield fleet


async def test_postgres_killed_mid_stream_loses_no_acknowledged_commit(
    own_postgres: PostgresServer,
    fleet: Fleet,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    database_url = own_postgres.url_for(DATABASE)
    settings_default = await _server_setting(database_url, "synchronous_commit")
    try:
        stream = await seeded_stream(database_url)
        total = len(stream.expected)
        topic, group = fleet.setting("author_matches_topic"), fleet.setting("consumer_group_id")
        await fleet.create_topics(3)
        await fleet.start()

        # The service is committing a chunk when the server dies.
        kill_while_busy = FaultMidStream(stream, lambda: asyncio.to_thread(own_postgres.kill))

        async with StreamProducer(kafka_bootstrap) as producer:
            sending = asyncio.create_task(
                producer.stream(topic, stream.messages, pause=0.1, after_chunk=kill_while_busy)
            )
            await kill_while_busy.wait()
            assert not own_postgres.is_running()
            started_at = time.monotonic()
            await asyncio.to_thread(own_postgres.start)  # crash recovery replays the WAL
            rows_at_restart = await association_count(database_url)
            assert rows_at_restart is not None
            assert 0 < rows_at_restart < total, "the kill must hit the middle of the stream"
            resumed_at = await wait_for_rows(
                database_url, rows_at_restart + 1, within=60, services=fleet.all
            )
            await sending
        # Once the group committed every offset the service considers everything stored: what
        # the database lacks now is lost for good (it used to be, with commits acknowledged
        # before they were durable).
        drained_at = await wait_committed_to_end(
            kafka_bootstrap, group, topic, within=120, services=fleet.all
        )
        verdict = await verify(database_url, stream)
        assert verdict.exact, verdict.describe()
    finally:
        await fleet.kill_all()

    reliability_report.record_fault(
        FaultRow.of_stream(
            "PostgreSQL kill -9 mid-stream",
            stream,
            verdict,
            recovery=f"{resumed_at - started_at:.1f} s",
            notes=(
                f"lost {total - verdict.rows_found}; server default synchronous_commit="
                f"{settings_default}, the service's connections: on; killed with "
                f"{rows_at_restart:,} rows stored; recovery = server launch (crash recovery) "
                f"to first new row; drained {drained_at - started_at:.1f} s after the launch"
            ),
        )
    )


async def _server_setting(database_url: str, name: str) -> str:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        value: str = await connection.fetchval("SELECT current_setting($1)", name)
    finally:
        await connection.close()
    return value
