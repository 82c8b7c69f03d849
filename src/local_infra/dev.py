"""The long-lived development servers behind `local-infra up/down/status/env`.

Data lives in ``<root>/dev/<name>`` and survives ``down``/``up``; ports and pids are kept in
``<root>/dev/state.json`` so that ``up`` is idempotent and reuses the same ports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_infra.external import ENV_VARS, ExternalServer, external_from_env
from local_infra.factory import PORT_COUNTS, new_local_server
from local_infra.install import Log, ensure_installed, stderr_log
from local_infra.paths import infra_root
from local_infra.ports import port_is_free
from local_infra.postgres import PostgresServer
from local_infra.server import SERVER_NAMES, LocalServer, Server

DEV_DATABASE = "class_management"


@dataclass(frozen=True)
class ServerStatus:
    name: str
    pid: int | None
    port: int | None
    running: bool
    url: str | None
    external: bool


def dev_url(server: Server) -> str:
    """The URL the service should use: for Postgres, the service's own database."""
    if isinstance(server, PostgresServer):
        return server.url_for(DEV_DATABASE)
    return server.url


class DevStack:
    """Start/stop/inspect the dev servers. All methods are idempotent."""

    def __init__(self, root: Path | None = None, environ: Mapping[str, str] | None = None):
        self.root = root or infra_root()
        self.directory = self.root / "dev"
        self.state_path = self.directory / "state.json"
        self.environ = os.environ if environ is None else environ

    # -- state ----------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            state = json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return {k: v for k, v in state.get("servers", {}).items() if k in SERVER_NAMES}

    def _save(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"servers": state}, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.state_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Serialise concurrent up/down (two terminals) and hand out the current state."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self._load()

    # -- servers --------------------------------------------------------------------------
    def _external(self, name: str, state: Mapping[str, Mapping[str, Any]]) -> ExternalServer | None:
        external = external_from_env(name, self.environ)
        # `eval "$(local-infra env)"` puts our own URLs into the environment; those still mean
        # "the dev server", or `up` in that shell would never restart a stopped server.
        if external is not None and external.url == state.get(name, {}).get("url"):
            return None
        return external

    def _local(self, name: str, state: Mapping[str, Mapping[str, Any]]) -> LocalServer | None:
        """The dev server as recorded in the state (None if it was never created)."""
        ports = state.get(name, {}).get("ports")
        if not isinstance(ports, list) or len(ports) != PORT_COUNTS[name]:
            return None
        return new_local_server(
            name, self.directory / name, cache_dir=self.root / "cache", ports=ports
        )

    def up(self, names: Iterable[str] = SERVER_NAMES, log: Log = stderr_log) -> dict[str, Server]:
        """Install what is missing and start the servers (reusing running ones and ports)."""
        wanted = _validated(names)
        servers: dict[str, Server] = {}
        with self._locked() as state:
            externals = {name: self._external(name, state) for name in wanted}
            ensure_installed([n for n in wanted if externals[n] is None], root=self.root, log=log)
            for name in wanted:
                external = externals[name]
                if external is not None:
                    log(f"{name}: external, {external.url} (from {external.env_var})")
                    servers[name] = external
                    continue
                server = self._local(name, state)
                if server is not None and server.is_running():
                    log(
                        f"{name}: already running on {server.host}:{server.port} (pid {server.pid})"
                    )
                else:
                    if server is None or not all(port_is_free(p) for p in server.ports):
                        # First start, or someone else took the old port meanwhile.
                        server = new_local_server(
                            name, self.directory / name, cache_dir=self.root / "cache"
                        )
                    server.start()
                    log(
                        f"{name}: started on {server.host}:{server.port} in "
                        f"{server.last_start_seconds or 0:.2f} s (pid {server.pid})"
                    )
                if isinstance(server, PostgresServer) and server.create_database(DEV_DATABASE):
                    log(f"{name}: created database {DEV_DATABASE}")
                state[name] = {
                    "ports": list(server.ports),
                    "pid": server.pid,
                    "url": dev_url(server),
                }
                self._save(state)  # after each server, so a later failure loses nothing
                servers[name] = server
        return servers

    def down(
        self, names: Iterable[str] = SERVER_NAMES, *, wipe: bool = False, log: Log = stderr_log
    ) -> None:
        """Stop the servers (by pid); with ``wipe`` also delete their data and ports."""
        wanted = _validated(names)
        with self._locked() as state:
            for name in wanted:
                server = self._local(name, state)
                if server is not None and server.is_running():
                    pid = server.pid
                    server.stop()
                    log(f"{name}: stopped (pid {pid})")
                else:
                    log(f"{name}: not running")
                if wipe:
                    shutil.rmtree(self.directory / name, ignore_errors=True)
                    state.pop(name, None)
                    log(f"{name}: data removed")
                elif name in state:
                    state[name]["pid"] = None
            self._save(state)

    def status(self) -> list[ServerStatus]:
        state = self._load()
        rows = []
        for name in SERVER_NAMES:
            external = self._external(name, state)
            if external is not None:
                running = external.is_running()
                rows.append(ServerStatus(name, None, external.port, running, external.url, True))
                continue
            server = self._local(name, state)
            if server is None:
                rows.append(ServerStatus(name, None, None, False, None, False))
                continue
            running = server.is_running()
            url = dev_url(server)
            rows.append(ServerStatus(name, server.pid, server.port, running, url, False))
        return rows

    def env(self) -> dict[str, str]:
        """Environment variables (ENV_VARS) pointing the service at the running servers."""
        return {ENV_VARS[row.name]: row.url for row in self.status() if row.running and row.url}


def _validated(names: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(names))  # keep order, drop duplicates
    unknown = [n for n in wanted if n not in SERVER_NAMES]
    if unknown:
        raise ValueError(f"unknown server(s) {unknown}; expected some of {list(SERVER_NAMES)}")
    return wanted
