"""A Redis server without persistence (data lives only as long as the process)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

from local_infra.process import ServerStartError
from local_infra.server import LocalServer


def find_executable() -> Path | None:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    return Path(found) if found else None


def answers_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True once the server answers PING with PONG (not e.g. -LOADING while starting)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(LocalServer):
    """redis-server on 127.0.0.1:<port>, database 0 in the URL."""

    name = "redis"
    stop_timeout = 10.0

    def __init__(self, directory: Path, port: int, *, executable: Path | None = None) -> None:
        super().__init__(directory, port)
        found = executable or find_executable()
        if found is None:
            raise ServerStartError(
                "redis-server not found on PATH; install it, e.g. `apt-get install redis-server`"
            )
        self.executable = found

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def command(self) -> Sequence[str]:
        return [
            str(self.executable),
            *("--port", str(self.port), "--bind", self.host),
            # No RDB snapshots and no AOF: nothing is written to disk, nothing to wait for.
            *("--save", "", "--appendonly", "no"),
            *("--daemonize", "no", "--dir", str(self.directory)),
            # Only loopback is reachable anyway; don't refuse clients for lack of a password.
            *("--protected-mode", "no"),
        ]

    def is_ready(self) -> bool:
        return answers_ping(self.host, self.port)
