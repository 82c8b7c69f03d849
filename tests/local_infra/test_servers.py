"""The local_infra servers really run and behave as the rest of the test suite relies on."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis

from class_management_service.db import asyncpg_dsn
from class_management_service.migrations import runner
from local_infra import paths
from local_infra.dev import DEV_DATABASE
from local_infra.external import ENV_VARS, ExternalServer
from local_infra.paths import scratch_root
from local_infra.postgres import PostgresServer
from local_infra.process import ManagedProcess
from local_infra.server import DatabaseServer, LocalServer, Server
from local_infra.session import LOCK_NAME, SessionInfra, cleanup_orphaned_runs
from tests.databases import DatabaseClones
from tests.waiting import wait_for

# -- PostgreSQL ---------------------------------------------------------------------------


async def test_postgres_answers(postgres_server: DatabaseServer) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(postgres_server.url))
    try:
        assert await connection.fetchval("select 1") == 1
        assert await connection.fetchval("select current_user") == "cms"
    finally:
        await connection.close()


async def test_postgres_keeps_data_across_stop_and_kill(own_postgres: PostgresServer) -> None:
    postgres_server = own_postgres
    connection = await asyncpg.connect(asyncpg_dsn(postgres_server.url))
    await connection.execute("create table restart_check (v text)")
    await connection.execute("insert into restart_check values ('kept')")
    # Still connected on purpose: stop() must not wait for clients to disconnect.
    port, pid = postgres_server.port, postgres_server.pid

    postgres_server.stop()
    assert not postgres_server.is_running()
    postgres_server.stop()  # idempotent
    postgres_server.start()
    assert postgres_server.pid != pid
    postgres_server.kill()  # a crash: the server recovers from its WAL on the next start
    assert not postgres_server.is_running()
    postgres_server.start()
    postgres_server.start()  # idempotent
    connection.terminate()  # its server is gone

    assert postgres_server.port == port
    connection = await asyncpg.connect(asyncpg_dsn(postgres_server.url))
    try:
        assert await connection.fetchval("select v from restart_check") == "kept"
        await connection.execute("drop table restart_check")
    finally:
        await connection.close()


async def test_database_clones_survive_a_restart_in_the_middle_of_a_clone(
    own_postgres: PostgresServer,
) -> None:
    """The harness (tests/conftest.py) makes the next test database ahead and empties used ones
    in the background; a restart interrupts both, and the next take must still get a database."""
    template = "clone_template"
    admin = await asyncpg.connect(asyncpg_dsn(own_postgres.url))
    await admin.execute(f'CREATE DATABASE "{template}"')
    await admin.close()
    await asyncio.to_thread(runner.upgrade, own_postgres.url_for(template))
    async with DatabaseClones.of(own_postgres.url, template, ready=[]) as database_clones:
        database_clones.release(await database_clones.take(more=True), more=True)
        own_postgres.stop()  # before the loop runs again: the clone and the reset hit a dead server
        # The scenario itself: the loop runs the clone and the reset while the server is down.
        await asyncio.sleep(0.2)
        own_postgres.start()

        name = await database_clones.take(more=False)
        connection = await asyncpg.connect(asyncpg_dsn(own_postgres.url_for(name)))
        try:
            assert await connection.fetchval("select count(*) from courses") > 0  # migrated
        finally:
            await connection.close()
        database_clones.release(name, more=False)


# -- Redis --------------------------------------------------------------------------------


async def test_redis_answers(redis_server: Server) -> None:
    client = Redis.from_url(redis_server.url)
    try:
        assert await client.ping() is True
    finally:
        await client.aclose()


# -- Kafka --------------------------------------------------------------------------------


async def _produce(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    # No group: the consumer is assigned every partition at once, no rebalance to wait for.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < count:
            message = await asyncio.wait_for(consumer.getone(), timeout=30)
            values.append(message.value)
        return values
    finally:
        await consumer.stop()


async def test_kafka_round_trip_on_a_new_topic(kafka_server: Server) -> None:
    topic = f"local-infra.{uuid.uuid4().hex[:8]}"  # auto-created by the broker
    await _produce(kafka_server.url, topic, b"hello")
    assert await _consume(kafka_server.url, topic, 1) == [b"hello"]


async def test_kafka_keeps_data_across_stop_and_kill(own_kafka: LocalServer) -> None:
    kafka_server = own_kafka
    topic = f"local-infra.{uuid.uuid4().hex[:8]}"
    port = kafka_server.port
    await _produce(kafka_server.url, topic, b"before-stop")

    kafka_server.stop()  # what the fault tests do: broker away, then back on the same port
    assert not kafka_server.is_running()
    kafka_server.start()
    await _produce(kafka_server.url, topic, b"before-kill")
    kafka_server.kill()
    kafka_server.start()

    assert kafka_server.port == port
    assert await _consume(kafka_server.url, topic, 2) == [b"before-stop", b"before-kill"]


# -- dev CLI ------------------------------------------------------------------------------


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS.values()}
    env["LOCAL_INFRA_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "local_infra", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


async def test_up_is_idempotent_and_down_stops(
    local_infra_session: SessionInfra, postgres_binaries: Path, redis_binaries: Path
) -> None:
    home = local_infra_session.directory / "cli-home"
    home.mkdir()
    (home / "cache").symlink_to(postgres_binaries)  # reuse the warm caches
    state_path = home / "dev" / "state.json"
    try:
        _cli(home, "up", "postgres", "redis")
        first = json.loads(state_path.read_text())["servers"]
        again = _cli(home, "up", "redis", "postgres")
        assert "already running" in again.stderr
        assert json.loads(state_path.read_text())["servers"] == first  # same ports and pids

        exports = _cli(home, "env").stdout
        database_url = first["postgres"]["url"]
        assert f"export {ENV_VARS['postgres']}={database_url}" in exports
        assert database_url.endswith(f"/{DEV_DATABASE}")
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        await connection.close()
        assert "postgres  " in _cli(home, "status").stdout
    finally:
        _cli(home, "down")
    status = _cli(home, "status").stdout
    assert " yes " not in status
    _cli(home, "down")  # idempotent


# -- housekeeping (no servers) ----------------------------------------------------------------


async def test_orphaned_test_runs_are_cleaned_up(tmp_path: Path) -> None:
    runs = tmp_path / "test-runs"
    orphan = runs / "999999-dead"
    sleeper = ManagedProcess(orphan / "redis", "sleeper")
    pid = sleeper.spawn(["sleep", "60"])
    (orphan / LOCK_NAME).touch()  # nobody holds the lock: its session is gone
    old = time.time() - 3600
    os.utime(orphan, (old, old))

    assert cleanup_orphaned_runs(runs, log=lambda _: None) == [orphan]
    assert not orphan.exists()
    assert not sleeper.is_running()
    # It is our child, so it stays a zombie until reaped here; reaping proves it has exited.
    await wait_for(
        lambda: os.waitpid(pid, os.WNOHANG) != (0, 0),
        within=5,
        every=0.01,
        what="the orphaned server to exit",
    )


def test_scratch_is_in_shared_memory_once(
    local_infra_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test runs go to memory (cheap to create and delete files in), to the same directory for
    the same root; a root already in memory keeps them; a small /dev/shm is not used."""
    scratch = scratch_root(local_infra_root)
    shared = Path("/dev/shm")  # noqa: S108 - only looked at
    if not shared.is_dir() or shutil.disk_usage(shared).free < paths._SCRATCH_MIN_FREE_BYTES:
        assert scratch == local_infra_root
        return
    with monkeypatch.context() as small:
        small.setattr(paths, "_SCRATCH_MIN_FREE_BYTES", shutil.disk_usage(shared).total + 1)
        assert scratch_root(local_infra_root) == local_infra_root
    assert scratch.stat().st_dev == shared.stat().st_dev
    assert scratch_root(scratch) == scratch
    assert scratch_root(local_infra_root) == scratch
    assert scratch.name.startswith("local-infra-")


def test_the_scratch_of_a_deleted_root_is_freed_by_the_next_session(
    local_infra_root: Path, tmp_path: Path
) -> None:
    scratch = scratch_root(local_infra_root)
    deleted_root = tmp_path / "deleted-checkout" / ".infra"
    deleted_root.mkdir(parents=True)
    abandoned = scratch_root(deleted_root)
    if scratch == local_infra_root:  # no usable /dev/shm: every root keeps its own scratch
        assert abandoned == deleted_root
        return
    (abandoned / "test-runs").mkdir()
    assert Path((abandoned / "owner").read_text()) == deleted_root
    shutil.rmtree(deleted_root.parent)

    assert scratch_root(local_infra_root) == scratch
    assert not abandoned.exists()
    assert scratch.is_dir()


def test_external_server_from_url() -> None:
    db = ExternalServer("postgres", "postgresql+asyncpg://u@db.example:6543/app")
    assert (db.host, db.port, db.pid, db.external) == ("db.example", 6543, None, True)
    assert db.url_for("other") == "postgresql+asyncpg://u@db.example:6543/other"
    kafka = ExternalServer("kafka", "k1:19092,k2:19092")
    assert (kafka.host, kafka.port) == ("k1", 19092)
    kafka.stop()  # no-op
