"""The real service as a separate OS process (``python -m class_management_service run``).

Shared by the service tests (``tests/service``) and the fault-injection suite
(``tests/reliability``): build the environment an operator would set, launch the process with
its output in a log file, wait until it serves HTTP, and stop it gracefully (SIGTERM) or crash it
(SIGKILL). A restarted process appends to the same log file, so a failure message shows the whole
story.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from local_infra.paths import bytecode_cache
from tests.waiting import wait_for

PREFIX = "CLASS_MANAGEMENT_SERVICE_"


@dataclass
class ServiceProcess:
    process: asyncio.subprocess.Process
    base_url: str
    database_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def setting(self, name: str) -> str:
        """The value of ``CLASS_MANAGEMENT_SERVICE_<NAME>`` this process was started with."""
        return self.env[PREFIX + name.upper()]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """The process's JSON log lines (non-JSON lines, e.g. a crash trace, as ``raw``)."""
        entries: list[dict[str, Any]] = []
        for line in self.log_text().splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"raw": line})
        return entries

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

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

    async def kill(self) -> None:
        """SIGKILL (``kill -9``): no shutdown hook, no final offset commit, nothing flushed."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def service_env(
    *,
    database_url: str,
    redis_url: str,
    kafka_bootstrap: str,
    port: int,
    internal_api_key: str,
    unique_name: Callable[[str], str],
    **overrides: str,
) -> dict[str, str]:
    """The process environment: ours without any ``CLASS_MANAGEMENT_SERVICE_*``, plus settings.

    Topics and the consumer group are unique per call (``unique_name``); ``overrides`` are
    setting names without the prefix (``consumer_session_timeout_ms="6000"``).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(PREFIX)}
    # An installed service has its bytecode cached; with PYTHONDONTWRITEBYTECODE (set on the
    # shared machine) each of a run's ~50 processes compiled the same modules again, ~8 % of a
    # start's CPU. The cache lives with local-infra's, out of the work tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache())
    settings = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "INTERNAL_API_KEY": internal_api_key,
        "AUTHOR_MATCHES_TOPIC": unique_name("author-matches"),
        "DEAD_LETTER_TOPIC": unique_name("author-matches-dlq"),
        "CONSUMER_GROUP_ID": unique_name("cms-service"),
        "CONSUMER_FETCH_TIMEOUT_MS": "200",
        "CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
        "LOG_LEVEL": "INFO",
    }
    settings.update({key.upper(): value for key, value in overrides.items()})
    env.update({PREFIX + key: value for key, value in settings.items()})
    return env


async def launch_service(
    env: Mapping[str, str],
    log_path: Path,
    *,
    args: Sequence[str] = (),
    wait: bool = True,
    within: float = 60.0,
) -> ServiceProcess:
    """Start ``python -m class_management_service run [args]``; output appended to ``log_path``.

    With ``wait`` (default) return once it answers HTTP; a process that exits or does not serve
    in time is an AssertionError with its log tail.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "class_management_service",
            "run",
            *args,
            env=dict(env),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    service = ServiceProcess(
        process,
        f"http://127.0.0.1:{env[PREFIX + 'PORT']}",
        env[PREFIX + "DATABASE_URL"],
        log_path,
        dict(env),
        tuple(args),
    )
    if wait:
        try:
            await wait_until_serving(service, within)
        except BaseException:
            await service.kill()
            raise
    return service


async def restart_service(service: ServiceProcess, *, wait: bool = True) -> ServiceProcess:
    """A new process with the same environment, arguments and log file (the old one must be
    gone: same port)."""
    assert not service.running, "stop or kill the old process first"
    return await launch_service(service.env, service.log_path, args=service.args, wait=wait)


async def wait_until_serving(service: ServiceProcess, within: float = 60.0) -> None:
    async with httpx.AsyncClient(base_url=service.base_url, timeout=2.0) as client:

        async def serving() -> bool:
            if service.process.returncode is not None:
                raise AssertionError(
                    f"service exited with {service.process.returncode} while starting\n"
                    f"{service.log_tail()}"
                )
            try:
                await client.get("/metrics")
            except httpx.TransportError:
                return False
            return True

        await wait_for(
            serving, within=within, every=0.1, what=lambda: f"serving\n{service.log_tail()}"
        )
