"""Fixtures that run the real service process (``python -m class_management_service run``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from local_infra.ports import free_port
from tests.conftest import INTERNAL_API_KEY


@dataclass
class ServiceProcess:
    process: asyncio.subprocess.Process
    base_url: str
    database_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log_lines(self) -> list[dict[str, Any]]:
        """The process's JSON log lines (non-JSON lines, e.g. a crash trace, as ``raw``)."""
        entries: list[dict[str, Any]] = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"raw": line})
        return entries

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def terminate(self, within: float = 20.0) -> int:
        """SIGTERM, then wait for the exit code (killed after ``within`` seconds)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(within):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise AssertionError(
                    f"service did not stop within {within}s of SIGTERM\n{self.log_tail()}"
                ) from None
        assert self.process.returncode is not None
        return self.process.returncode


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
async def empty_database_url(postgres_server: Any, postgres_admin_url: str) -> AsyncIterator[str]:
    """A brand-new, empty database (no schema): the service's run command migrates it."""
    name = f"service_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_plain(postgres_admin_url))
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
    port = free_port()
    prefix = "CLASS_MANAGEMENT_SERVICE_"
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefix)}
    env.update(
        {
            f"{prefix}DATABASE_URL": empty_database_url,
            f"{prefix}REDIS_URL": redis_url,
            f"{prefix}KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            f"{prefix}HOST": "127.0.0.1",
            f"{prefix}PORT": str(port),
            f"{prefix}INTERNAL_API_KEY": INTERNAL_API_KEY,
            f"{prefix}AUTHOR_MATCHES_TOPIC": unique_name("author-matches"),
            f"{prefix}DEAD_LETTER_TOPIC": unique_name("author-matches-dlq"),
            f"{prefix}CONSUMER_GROUP_ID": unique_name("cms-service"),
            f"{prefix}CONSUMER_FETCH_TIMEOUT_MS": "200",
            f"{prefix}CONSUMER_SESSION_TIMEOUT_MS": "6000",
            f"{prefix}CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
            f"{prefix}LOG_LEVEL": "INFO",
        }
    )
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "class_management_service",
            "run",
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    service = ServiceProcess(process, f"http://127.0.0.1:{port}", empty_database_url, log_path, env)
    try:
        await _wait_until_serving(service)
        yield service
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _wait_until_serving(service: ServiceProcess, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=service.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if service.process.returncode is not None:
                raise AssertionError(
                    f"service exited with {service.process.returncode} while starting\n"
                    f"{service.log_tail()}"
                )
            try:
                await client.get("/metrics")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"service not serving within {within}s\n{service.log_tail()}")
