"""A throwaway PostgreSQL server tuned for tests (no fsync, loopback only, trust auth).

New clusters are not initdb'd but copied from a cached template (see pg_cluster.py).
"""

from __future__ import annotations

import re
import signal
import socket
import struct
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from local_infra.pg_cluster import (
    USER,
    check_reachable_by,
    clean_env,
    create_data_dir,
    find_bin_dir,
    server_user,
)
from local_infra.process import ServerStartError
from local_infra.server import LocalServer

DEFAULT_DATABASE = "postgres"
# Max length of a unix socket path (sun_path) is 107 bytes on Linux; keep a safety margin.
_MAX_SOCKET_PATH = 100
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Settings that make the server start fast and run tests fast. Durability is not a goal: the
# data of test servers is thrown away, and the dev server's data is disposable too.
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
    # JIT compilation only ever makes the small queries of tests slower and less predictable.
    "jit": "off",
}


def accepts_connections(host: str, port: int, timeout: float = 1.0) -> bool:
    """What ``pg_isready`` checks: does the server start a session for us?

    Sends a protocol-3.0 StartupMessage. The answer 'R' (an authentication request) means the
    server accepts sessions; 'E' is an error such as 57P03 "the database system is starting up".
    """
    params = f"user\0{USER}\0database\0{DEFAULT_DATABASE}\0\0".encode()
    body = struct.pack("!I", 3 << 16) + params
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack("!I", len(body) + 4) + body)
            accepted = sock.recv(1) == b"R"
            if accepted:
                sock.sendall(b"X\0\0\0\4")  # Terminate: avoids "unexpected EOF" in the log
            return accepted
    except OSError:
        return False


class PostgresServer(LocalServer):
    """PostgreSQL on 127.0.0.1:<port> with data in ``<directory>/data``; user ``cms``."""

    name = "postgres"
    # SIGINT is the "fast" shutdown: it disconnects clients. SIGTERM ("smart") would wait for
    # every client (e.g. a forgotten connection pool) to disconnect first.
    stop_signal = signal.SIGINT

    def __init__(
        self, directory: Path, port: int, *, cache_dir: Path, bin_dir: Path | None = None
    ) -> None:
        super().__init__(directory, port)
        self.cache_dir = cache_dir
        found = bin_dir or find_bin_dir()
        if found is None:
            raise ServerStartError(
                "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin "
                "and PATH); install them, e.g. `apt-get install postgresql-15`"
            )
        self.bin_dir = found
        self.data_dir = self.directory / "data"

    @property
    def url(self) -> str:
        return self.url_for(DEFAULT_DATABASE)

    def url_for(self, database: str) -> str:
        """SQLAlchemy/asyncpg URL of ``database`` on this server."""
        return f"postgresql+asyncpg://{USER}@{self.host}:{self.port}/{database}"

    def run_as(self) -> str | None:
        return server_user()

    def environment(self) -> Mapping[str, str]:
        return clean_env()

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        user = self.run_as()
        if user is not None:
            check_reachable_by(user, self.directory)
        if not (self.data_dir / "PG_VERSION").is_file():
            create_data_dir(self.cache_dir, self.bin_dir, self.data_dir)

    def _socket_dir(self) -> str:
        # The data dir belongs to the server user, so it can create its socket there. Paths
        # that are too long for a unix socket just disable it (TCP still works).
        fits = len(str(self.data_dir)) + len("/.s.PGSQL.65535") <= _MAX_SOCKET_PATH
        return str(self.data_dir) if fits else ""

    def command(self) -> Sequence[str]:
        settings = {**_SETTINGS, "unix_socket_directories": self._socket_dir()}
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def is_ready(self) -> bool:
        return accepts_connections(self.host, self.port)

    def create_database(self, database: str) -> bool:
        """Create ``database`` unless it exists; returns True if it was created."""
        if not _IDENTIFIER.match(database):
            raise ValueError(f"not a plain SQL identifier: {database!r}")
        # Safe to interpolate: checked against _IDENTIFIER above.
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"  # noqa: S608
        exists = self.psql(query)
        if exists.strip() == "1":
            return False
        self.psql(f'CREATE DATABASE "{database}"')
        return True

    def psql(self, sql: str, database: str = DEFAULT_DATABASE) -> str:
        """Run ``sql`` with psql as ``cms``; returns unaligned tuples-only output."""
        argv = [str(self.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA"]
        argv += ["-h", self.host, "-p", str(self.port), "-U", USER, "-d", database, "-c", sql]
        result = subprocess.run(
            argv, capture_output=True, text=True, env=clean_env(), timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({sql!r}): {result.stderr.strip()}")
        return result.stdout
