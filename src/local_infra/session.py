"""The ephemeral servers of one test session, under ``<scratch>/test-runs/<pid>-<random>/``
(``paths.scratch_root``: in shared memory where there is some).

While the session lives it holds an exclusive ``flock`` on ``owner.lock`` in its directory.
A later session that can take that lock knows the owner is gone (crashed, SIGKILLed) and
kills the orphaned servers and removes their directory - no pid guessing involved.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from local_infra.external import external_from_env
from local_infra.factory import new_local_server
from local_infra.install import ensure_installed, stderr_log
from local_infra.paths import scratch_root
from local_infra.process import ManagedProcess
from local_infra.server import LocalServer, Server

LOCK_NAME = "owner.lock"
# Directories younger than this are left alone: their owner may not hold the lock yet.
_GRACE_SECONDS = 60.0

Log = Callable[[str], None]


def cleanup_orphaned_runs(runs_dir: Path, log: Log = stderr_log) -> list[Path]:
    """Kill the servers of dead sessions and delete their directories; returns those removed."""
    removed: list[Path] = []
    if not runs_dir.is_dir():
        return removed
    for run in sorted(runs_dir.iterdir()):
        if not run.is_dir():
            continue
        with contextlib.suppress(FileNotFoundError):
            if time.time() - run.stat().st_mtime < _GRACE_SECONDS:
                continue
            with _try_lock(run / LOCK_NAME) as locked:
                if not locked:
                    continue  # its session is still running
                for server_dir in run.iterdir():
                    if server_dir.is_dir():
                        ManagedProcess(server_dir, server_dir.name).kill()
                shutil.rmtree(run, ignore_errors=True)
                removed.append(run)
                log(f"local-infra: removed orphaned test run {run}")
    return removed


def _remove_in_background(directory: Path) -> None:
    """Move a finished session's directory out of the way and delete it in a detached process:
    the servers' files (a PostgreSQL cluster alone is ~1000) took 0.1-0.3 s of every session's
    end. If the process never gets to it, the next session's orphan clean-up does."""
    trash = directory.with_name(f".removing-{directory.name}")
    try:
        directory.rename(trash)
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        return
    # `sh` exits at once and `rm` is orphaned to init: nobody waits for it or has to reap it.
    subprocess.run(
        ["sh", "-c", 'rm -rf "$1" >/dev/null 2>&1 &', "sh", str(trash)],
        check=False,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """Yields True if the lock could be taken (or the file does not exist)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class SessionInfra:
    """Starts servers on first request, stops them all and removes the run dir in close()."""

    def __init__(self, root: Path, log: Log = stderr_log) -> None:
        self.root = root
        self.runs_dir = scratch_root(root) / "test-runs"
        self.log = log
        self._directory: Path | None = None
        self._lock_fd: int | None = None
        self._servers: dict[str, Server] = {}

    @property
    def directory(self) -> Path:
        """This session's own directory (created, and orphans cleaned up, on first use)."""
        if self._directory is None:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            cleanup_orphaned_runs(self.runs_dir, self.log)
            directory = self.runs_dir / f"{os.getpid()}-{secrets.token_hex(4)}"
            directory.mkdir()
            fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd, self._directory = fd, directory
        return self._directory

    def server(self, name: str) -> Server:
        """The session's server ``name``, started now if this is the first request."""
        if name in self._servers:
            return self._servers[name]
        external = external_from_env(name)
        if external is not None:
            self.log(f"local-infra: using external {name} at {external.url} ({external.env_var})")
            self._servers[name] = external
            return external
        ensure_installed([name], root=self.root, log=self.log)
        server = new_local_server(name, self.directory / name, cache_dir=self.root / "cache")
        server.start()  # raises (with the server's log tail) if it does not come up
        self._servers[name] = server
        self.log(
            f"local-infra: started {name} on {server.host}:{server.port} in "
            f"{server.last_start_seconds or 0:.2f} s (pid {server.pid})"
        )
        return server

    def close(self) -> None:
        """Stop every local server (newest first) and remove the run directory."""
        try:
            for name, server in reversed(list(self._servers.items())):
                if not isinstance(server, LocalServer):  # external: not ours to stop
                    continue
                pid = server.pid
                started = time.monotonic()
                server.stop()
                if pid is None:
                    self.log(f"local-infra: {name} was not running any more")
                else:
                    took = time.monotonic() - started
                    self.log(f"local-infra: stopped {name} (pid {pid}) in {took:.2f} s")
        finally:
            self._servers.clear()
            if self._directory is not None:
                _remove_in_background(self._directory)
                self._directory = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
