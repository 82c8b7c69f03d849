"""The interface every server (local or external) offers, and the base for local ones."""

from __future__ import annotations

import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Literal, Protocol

from local_infra.ports import LOOPBACK, port_is_free
from local_infra.process import ManagedProcess, ServerStartError

ServerName = Literal["postgres", "redis", "kafka"]
SERVER_NAMES: tuple[ServerName, ...] = ("postgres", "redis", "kafka")


class Server(Protocol):
    """What tests and the CLI rely on. ``start``/``stop`` are idempotent."""

    @property
    def name(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def url(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def external(self) -> bool: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def is_running(self) -> bool: ...


class DatabaseServer(Server, Protocol):
    """A Server that can also name a URL for another database on the same server."""

    def url_for(self, database: str) -> str: ...


class LocalServer(ABC):
    """A server binary run by us on loopback, with a fixed directory and port(s)."""

    name: ClassVar[str]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 30.0
    ready_timeout: ClassVar[float] = 60.0
    external: ClassVar[bool] = False

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory.absolute()
        self.host = LOOPBACK
        self.port = port
        self.process = ManagedProcess(self.directory, self.name)
        #: Wall time of the last start() that actually started the server, in seconds.
        self.last_start_seconds: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self.port}, directory={str(self.directory)!r})"

    @property
    @abstractmethod
    def url(self) -> str:
        """How clients reach the server."""

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port the server listens on (all must be free before it starts)."""
        return (self.port,)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.is_running()

    def start(self) -> None:
        """Start the server and wait until it serves requests; no-op if already running."""
        if self.is_running():
            return
        busy = [port for port in self.ports if not port_is_free(port, self.host)]
        if busy:
            # Without this check a readiness probe could be answered by a stranger on the port.
            raise ServerStartError(f"{self.name}: port(s) {busy} on {self.host} already in use")
        started = time.monotonic()
        self.prepare()
        self.process.spawn(self.command(), env=self.environment(), user=self.run_as())
        try:
            self.process.wait_until_ready(self.is_ready, self.ready_timeout)
        except BaseException:
            self.process.kill()
            raise
        self.last_start_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop gracefully (SIGKILL after ``stop_timeout``); no-op if not running."""
        self.process.stop(self.stop_signal, self.stop_timeout)

    def kill(self) -> None:
        """SIGKILL the server and its helpers at once, like a crash. Data dir is kept."""
        self.process.kill()

    # -- hooks for subclasses -------------------------------------------------------------
    def prepare(self) -> None:  # noqa: B027 - optional hook, intentionally empty
        """Create data dirs and config before spawning (must be idempotent)."""

    @abstractmethod
    def command(self) -> Sequence[str]:
        """argv of the server process."""

    def environment(self) -> Mapping[str, str] | None:
        """Environment of the server process (None: inherit ours)."""
        return None

    def run_as(self) -> str | None:
        """User to run the server as (None: ourselves)."""
        return None

    @abstractmethod
    def is_ready(self) -> bool:
        """One cheap readiness probe; called repeatedly while starting."""
