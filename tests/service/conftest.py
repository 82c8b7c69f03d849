"""Fixtures that run the real service process (``python -m class_management_service run``).

The process machinery itself lives in :mod:`tests.service_process` (shared with the
fault-injection suite in ``tests/reliability``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from class_management_service.db import asyncpg_dsn
from local_infra.ports import free_port
from tests.conftest import INTERNAL_API_KEY
from tests.service_process import ServiceProcess, launch_service, service_env

__all__ = ["ServiceProcess"]


@pytest.fixture
async def empty_database_url(postgres_server: Any, postgres_admin_url: str) -> AsyncIterator[str]:
    """A brand-new, empty database (no schema): the service's run command migrates it."""
    name = f"service_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(postgres_admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_server.url_for(name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def service_process(
    empty_database_url: str,
    redis_url: str,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> AsyncIterator[ServiceProcess]:
    """The service as operators run it, on a free port, pointed at this session's servers."""
    env = service_env(
        database_url=empty_database_url,
        redis_url=redis_url,
        kafka_bootstrap=kafka_bootstrap,
        port=free_port(),
        internal_api_key=INTERNAL_API_KEY,
        unique_name=unique_name,
    )
    service = await launch_service(env, tmp_path / "service.log")
    try:
        yield service
    finally:
        await service.kill()
