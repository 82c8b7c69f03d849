"""Servers of a test's own, for tests that stop, kill and restart them: the session's servers
are shared with every other test and must stay up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_infra.factory import new_local_server
from local_infra.postgres import PostgresServer
from local_infra.server import LocalServer
from local_infra.session import SessionInfra


def _own(name: str, session: SessionInfra, cache: Path) -> Iterator[LocalServer]:
    server = new_local_server(
        name, session.directory / f"{name}-own-{uuid.uuid4().hex[:8]}", cache_dir=cache
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_postgres(
    local_infra_session: SessionInfra, postgres_binaries: Path
) -> Iterator[PostgresServer]:
    for server in _own("postgres", local_infra_session, postgres_binaries):
        assert isinstance(server, PostgresServer)
        yield server


@pytest.fixture
def own_kafka(local_infra_session: SessionInfra, kafka_binaries: Path) -> Iterator[LocalServer]:
    yield from _own("kafka", local_infra_session, kafka_binaries)
