"""Fixtures of the fault-injection suite.

Every test here runs the real service as separate OS processes (``tests.service_process``)
against the session's real PostgreSQL, Redis and Kafka, injects one fault, and records a row of
the report (``tests.reliability.report``), printed at the end of the session. Only
``--reliability-report`` (given to a session in which *every* row was recorded: the whole suite
ran and passed) rewrites the table below the marker in ``docs/reliability.md``; no other run
writes a tracked file.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from class_management_service.db import asyncpg_dsn
from local_infra.ports import free_port
from tests.conftest import INTERNAL_API_KEY
from tests.reliability.harness import create_topics, metric, metrics_text, wait_until
from tests.reliability.report import (
    REPORT,
    WORKER_OUTPUT_KEY,
    AbuseRow,
    FaultRow,
    ReliabilityReport,
    finish,
)
from tests.service_process import ServiceProcess, launch_service, restart_service, service_env

# The report's row types, imported by the tests from here with the fixtures.
__all__ = ["AbuseRow", "FaultRow", "Fleet", "ReliabilityReport"]

# Fast settings for every service process of the suite (names without the prefix). The session
# timeout is how long the group waits for a killed replica before its partitions move (the
# broker allows 1 s in tests); heartbeats every 0.5 s keep a live but busy replica in the group.
FAST_SETTINGS = {
    "consumer_fetch_timeout_ms": "100",
    "consumer_session_timeout_ms": "2000",
    "consumer_heartbeat_interval_ms": "500",
    "outbox_poll_interval_seconds": "0.2",
    "producer_request_timeout_ms": "5000",
}


@pytest.fixture(scope="session")
def reliability_report(request: pytest.FixtureRequest) -> Iterator[ReliabilityReport]:
    """The session's collector; at the end the table is printed (and, with
    ``--reliability-report``, written if it is complete), or handed to the xdist controller."""
    yield REPORT
    workeroutput = getattr(request.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[WORKER_OUTPUT_KEY] = REPORT.to_json()
    else:
        finish(request.config)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    started = time.monotonic()
    yield
    REPORT.durations[item.name] = time.monotonic() - started


@pytest.fixture
async def fault_database(
    postgres_server: Any, postgres_admin_url: str, migrated_template: str
) -> AsyncIterator[str]:
    """A fresh migrated database for this test. Unlike ``database_url`` it holds no connection
    while the test runs (tests here stop PostgreSQL), and drops the database with a new one."""
    name = f"reliability_{uuid.uuid4().hex[:12]}"
    admin_dsn = asyncpg_dsn(postgres_admin_url)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}" STRATEGY FILE_COPY'
        )
    finally:
        await admin.close()
    yield postgres_server.url_for(name)
    if not postgres_server.is_running():
        postgres_server.start()
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def require_local(server: Any) -> None:
    """Fault injection stops and starts the server process: impossible for an external one
    (``CLASS_MANAGEMENT_SERVICE_*`` pointing at someone else's server)."""
    if getattr(server, "external", False):
        pytest.skip(f"cannot stop the external {server.name} server at {server.url}")


class Fleet:
    """The service processes of one test (all killed at the end of the test)."""

    def __init__(self, base_env: dict[str, str], log_dir: Path) -> None:
        self.base_env = base_env
        self.log_dir = log_dir
        self.processes: dict[str, ServiceProcess] = {}

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(self.base_env)
        env.update({f"CLASS_MANAGEMENT_SERVICE_{k.upper()}": v for k, v in overrides.items()})
        return env

    def setting(self, name: str) -> str:
        return self.base_env[f"CLASS_MANAGEMENT_SERVICE_{name.upper()}"]

    async def create_topics(self, partitions: int) -> None:
        """This fleet's input topic with ``partitions`` partitions, and its dead-letter topic."""
        await create_topics(
            self.setting("kafka_bootstrap_servers"),
            {
                self.setting("author_matches_topic"): partitions,
                self.setting("dead_letter_topic"): 1,
            },
        )

    async def start(
        self, name: str = "service", *, consuming: bool = True, **overrides: str
    ) -> ServiceProcess:
        """A new replica on a free port; ``overrides`` are settings without the prefix.

        With ``consuming`` it returns once its consumer owns partitions of the (pre-created)
        topic, so a stream starts against a consumer that is really there.
        """
        env = self.env(port=str(free_port()), **overrides)
        # The test's database is migrated already (cloned from the template): replicas
        # starting together must not race on migrations.
        service = await launch_service(env, self.log_dir / f"{name}.log", args=["--no-migrate"])
        self.processes[name] = service
        if consuming:
            topic = self.setting("author_matches_topic")

            async def assigned() -> bool:
                text = await metrics_text(service)
                return metric(text, "kafka_consumer_assigned_partitions", topic=topic) > 0

            await wait_until(
                assigned,
                within=60,
                what=f"{name}'s consumer assigned partitions",
                services=[service],
            )
        return service

    async def restart(self, name: str = "service") -> ServiceProcess:
        service = await restart_service(self.processes[name])
        self.processes[name] = service
        return service

    @property
    def all(self) -> list[ServiceProcess]:
        return list(self.processes.values())

    async def kill_all(self) -> None:
        for service in self.processes.values():
            await service.kill()


@pytest.fixture
async def fleet(
    fault_database: str,
    redis_url: str,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> AsyncIterator[Fleet]:
    """Service processes on this test's database, topics and consumer group, fast settings."""
    async with fleet_on(fault_database, redis_url, kafka_bootstrap, unique_name, tmp_path) as fleet:
        yield fleet


@contextlib.asynccontextmanager
async def fleet_on(
    database_url: str,
    redis_url: str,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    log_dir: Path,
) -> AsyncIterator[Fleet]:
    """A fleet on ``database_url`` with topics and a consumer group of its own and fast
    settings; its processes are killed on the way out."""
    env = service_env(
        database_url=database_url,
        redis_url=redis_url,
        kafka_bootstrap=kafka_bootstrap,
        port=0,
        internal_api_key=INTERNAL_API_KEY,
        unique_name=unique_name,
        **FAST_SETTINGS,
    )
    fleet = Fleet(env, log_dir)
    try:
        yield fleet
    finally:
        await fleet.kill_all()
