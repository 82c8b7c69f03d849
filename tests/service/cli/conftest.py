"""The operators' CLI as an OS process (``python -m class_management_service ...``) against this
session's servers, configured only through the environment, as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from local_infra.ports import free_port
from tests.conftest import INTERNAL_API_KEY
from tests.service_process import PREFIX, service_env


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@dataclass
class CliRunner:
    env: dict[str, str]

    async def __call__(self, *args: str, env: Mapping[str, str] | None = None) -> Finished:
        """Run the command to its end (60 s at most); ``env`` overrides settings by name
        without the prefix (``INTERNAL_API_KEY=""``)."""
        environment = {**self.env, **{PREFIX + k: v for k, v in (env or {}).items()}}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "class_management_service",
            *args,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            stdout, stderr = await process.communicate()
        assert process.returncode is not None
        return Finished(process.returncode, stdout.decode(), stderr.decode())


# Placeholders no PostgreSQL-only command connects to.
_UNUSED_REDIS = "redis://127.0.0.1:1/0"
_UNUSED_KAFKA = "127.0.0.1:1"


@pytest.fixture
def cli(database_url: str, unique_name: Callable[[str], str]) -> CliRunner:
    """The CLI on this test's (migrated) database; Redis and Kafka unreachable placeholders."""
    return CliRunner(
        service_env(
            database_url=database_url,
            redis_url=_UNUSED_REDIS,
            kafka_bootstrap=_UNUSED_KAFKA,
            port=free_port(),
            internal_api_key=INTERNAL_API_KEY,
            unique_name=unique_name,
        )
    )


@pytest.fixture
def broker_cli(cli: CliRunner, redis_url: str, kafka_bootstrap: str) -> CliRunner:
    """:func:`cli` with this session's Redis and broker (and the test's own topics)."""
    return CliRunner(
        {
            **cli.env,
            PREFIX + "REDIS_URL": redis_url,
            PREFIX + "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        }
    )
