"""What every benchmark of ``python -m bench`` shares: servers, databases, child processes,
statistics and progress lines.

One :class:`Harness` lives for the whole run. Servers come from :mod:`local_infra` (started on
first use, stopped in :meth:`Harness.close`) unless ``CLASS_MANAGEMENT_SERVICE_DATABASE_URL`` /
``_REDIS_URL`` / ``_KAFKA_BOOTSTRAP_SERVERS`` name running ones. Every database a benchmark
creates and every child process it starts is registered here, so ``close()`` drops and stops
them all, also after Ctrl-C or SIGTERM (see ``bench.__main__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from class_management_service.db import asyncpg_dsn
from class_management_service.migrations import runner
from local_infra.paths import infra_root
from local_infra.ports import free_port
from local_infra.server import DatabaseServer
from local_infra.session import SessionInfra

T = TypeVar("T")

ENV_PREFIX = "CLASS_MANAGEMENT_SERVICE_"
REPOSITORY = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A benchmark cannot run (missing tool, server that did not start, wrong result)."""


def progress(message: str) -> None:
    """One progress line on stderr, with the time of day (long benchmarks print several)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on a fresh event loop in a thread of its own.

    Works whether or not the caller is inside an event loop, and keeps libraries that run their
    own loop (Alembic) apart. On Ctrl-C the coroutine's tasks are cancelled (so its ``finally``
    blocks close connections) before the KeyboardInterrupt goes on.
    """
    outcome: dict[str, Any] = {}
    loops: list[asyncio.AbstractEventLoop] = []

    def target() -> None:
        with asyncio.Runner() as runner:
            loops.append(runner.get_loop())
            try:
                outcome["value"] = runner.run(coroutine)
            except BaseException as exc:  # handed to the calling thread
                outcome["error"] = exc

    thread = threading.Thread(target=target, name="bench-async", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        if loops and not loops[0].is_closed():

            def cancel_all() -> None:
                for task in asyncio.all_tasks(loops[0]):
                    task.cancel()

            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loops[0].call_soon_threadsafe(cancel_all)
        thread.join(15)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Stats:
    """min/median/max of one quantity over the repetitions of a benchmark."""

    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        return cls(tuple(samples))

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def ratio_to(self, baseline: Stats) -> float:
        """This median as a share of the baseline's median."""
        return self.median / baseline.median if baseline.median else float("nan")


def rates(amount: float, seconds: Sequence[float]) -> Stats:
    """Per-second rates of ``amount`` units done in each of ``seconds``."""
    return Stats.of([amount / value for value in seconds])


@dataclass
class ServiceProcess:
    """A server process we started (the service, or the bare baseline app), on loopback."""

    name: str
    popen: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def status_kib(self, field_name: str) -> int | None:
        """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``: peak RSS, ``VmRSS``: now)."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
        return None

    def peak_rss_mib(self) -> float:
        """Peak resident set size so far (VmHWM), MiB."""
        kib = self.status_kib("VmHWM")
        if kib is None:
            raise BenchError(f"{self.name}: cannot read /proc/{self.pid}/status")
        return kib / 1024

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until_serving(self, path: str = "/openapi.json", within: float = 90.0) -> None:
        """Wait until an HTTP GET of ``path`` gets any answer."""
        host, port = self.base_url.removeprefix("http://").split(":")
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.popen.returncode} while starting:\n"
                    f"{self.log_tail()}"
                )
            try:
                with socket.create_connection((host, int(port)), timeout=1.0) as sock:
                    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                    if sock.recv(12).startswith(b"HTTP/1.1"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise BenchError(f"{self.name} not serving within {within:.0f} s:\n{self.log_tail()}")


@dataclass
class Harness:
    """Servers, databases and child processes of one benchmark run."""

    quick: bool = False
    infra: SessionInfra = field(default_factory=lambda: SessionInfra(infra_root(), log=progress))
    _children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _databases: list[str] = field(default_factory=list)
    _scratch: tempfile.TemporaryDirectory[str] | None = None

    # -- servers --------------------------------------------------------------------------
    def postgres(self) -> DatabaseServer:
        server: Any = self.infra.server("postgres")
        return server  # type: ignore[no-any-return]

    def redis_url(self) -> str:
        return self.infra.server("redis").url

    def kafka_bootstrap(self) -> str:
        return self.infra.server("kafka").url

    @property
    def scratch(self) -> Path:
        """A temporary directory for logs and scripts, removed in close()."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="cms-bench-")
        return Path(self._scratch.name)

    # -- databases ------------------------------------------------------------------------
    def new_database(self, prefix: str, *, migrate: bool = True) -> str:
        """A new database (SQLAlchemy URL), migrated unless told otherwise; dropped in close()."""
        server = self.postgres()
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        admin = asyncpg_dsn(server.url_for("postgres"))

        async def create() -> None:
            connection = await asyncpg.connect(admin)
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
            finally:
                await connection.close()

        run_async(create())
        self._databases.append(name)
        url = server.url_for(name)
        if migrate:
            with ThreadPoolExecutor(1) as pool:  # Alembic runs an event loop of its own
                pool.submit(runner.upgrade, url).result()
        return url

    def _drop_databases(self) -> None:
        if not self._databases:
            return
        admin = asyncpg_dsn(self.postgres().url_for("postgres"))

        async def drop() -> None:
            connection = await asyncpg.connect(admin)
            try:
                for name in self._databases:
                    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()

        try:
            run_async(drop())
        except Exception as exc:  # cleanup goes on with the rest
            progress(f"could not drop benchmark databases {self._databases}: {exc}")
        self._databases.clear()

    # -- child processes ------------------------------------------------------------------
    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_name: str,
        cwd: Path = REPOSITORY,
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``argv`` in a session of its own (a Ctrl-C in the terminal reaches only us,
        and we stop it); stdout and stderr go to a log file in the scratch directory."""
        log_path = self.scratch / f"{log_name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        self._children.append(popen)
        return popen, log_path

    def stop(self, popen: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL of its process group if it is still there after ``timeout``."""
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(10)
        if popen in self._children:
            self._children.remove(popen)

    def service_env(self, database_url: str, **settings: str) -> dict[str, str]:
        """The environment of a service process: ours without CLASS_MANAGEMENT_SERVICE_*
        variables, plus the benchmark's servers and ``settings`` (names without the prefix)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
        env.update(
            {
                f"{ENV_PREFIX}DATABASE_URL": database_url,
                f"{ENV_PREFIX}REDIS_URL": self.redis_url(),
                f"{ENV_PREFIX}KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap(),
                f"{ENV_PREFIX}HOST": "127.0.0.1",
                # Configured as in a deployment (no built-in key); no benchmark calls with it.
                f"{ENV_PREFIX}INTERNAL_API_KEY": secrets.token_hex(16),
            }
        )
        env.update({f"{ENV_PREFIX}{key.upper()}": value for key, value in settings.items()})
        return env

    def start_service(self, name: str, database_url: str, **settings: str) -> ServiceProcess:
        """``python -m class_management_service run`` (one uvicorn worker) on a free port, on a
        database :meth:`new_database` migrated already; ``settings`` without the prefix."""
        port = free_port()
        argv = [sys.executable, "-m", "class_management_service", "run", "--port", str(port)]
        argv.append("--no-migrate")
        popen, log_path = self.spawn(
            argv, env=self.service_env(database_url, **settings), log_name=name
        )
        service = ServiceProcess(name, popen, f"http://127.0.0.1:{port}", log_path)
        service.wait_until_serving()
        return service

    def start_baseline_app(self) -> ServiceProcess:
        """``bench/baseline_app.py``: a bare FastAPI app under the service's uvicorn settings."""
        port = free_port()
        argv = [sys.executable, "-m", "bench.baseline_app", "--port", str(port)]
        popen, log_path = self.spawn(argv, log_name="baseline-app")
        app = ServiceProcess("baseline app", popen, f"http://127.0.0.1:{port}", log_path)
        app.wait_until_serving("/constant")
        return app

    # -- the end --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every child process, drop every database, stop the servers; never raises."""
        for popen in list(self._children):
            try:
                self.stop(popen, timeout=10.0)
            except Exception as exc:
                progress(f"could not stop child process {popen.pid}: {exc}")
        try:
            self._drop_databases()
        finally:
            try:
                self.infra.close()
            finally:
                if self._scratch is not None:
                    self._scratch.cleanup()
                    self._scratch = None


def timed(function: Callable[[], T]) -> tuple[T, float]:
    """(result, seconds) of calling ``function``."""
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started
