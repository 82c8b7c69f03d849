"""Servers someone else runs, named by environment variables (e.g. CI service containers).

If ``CLASS_MANAGEMENT_SERVICE_DATABASE_URL`` / ``..._REDIS_URL`` /
``..._KAFKA_BOOTSTRAP_SERVERS`` is set, nothing is installed or started for that server and
its URL is used as is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from local_infra.ports import can_connect

ENV_VARS: dict[str, str] = {
    "postgres": "CLASS_MANAGEMENT_SERVICE_DATABASE_URL",
    "redis": "CLASS_MANAGEMENT_SERVICE_REDIS_URL",
    "kafka": "CLASS_MANAGEMENT_SERVICE_KAFKA_BOOTSTRAP_SERVERS",
}
_DEFAULT_PORTS = {"postgres": 5432, "redis": 6379, "kafka": 9092}


class ExternalServer:
    """Same interface as the local servers; start/stop/kill do nothing."""

    external = True
    pid: int | None = None

    def __init__(self, name: str, url: str, env_var: str | None = None) -> None:
        self.name = name
        self.url = url
        self.env_var = env_var
        self.host, self.port = self._address()

    def __repr__(self) -> str:
        return f"ExternalServer({self.name!r}, {self.url!r})"

    def _address(self) -> tuple[str, int]:
        default = _DEFAULT_PORTS.get(self.name, 0)
        if self.name == "kafka":  # "host:port[,host:port...]": probe the first one
            first = self.url.split(",")[0].strip()
            host, _, port = first.rpartition(":")
            return (host or first or "localhost"), int(port) if port.isdigit() else default
        parts = urlsplit(self.url)
        return parts.hostname or "localhost", parts.port or default

    def url_for(self, database: str) -> str:
        """The URL with its path (database name) replaced."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def is_running(self) -> bool:
        return can_connect(self.host, self.port)

    def start(self) -> None:
        """Nothing to do: someone else runs it."""

    def stop(self) -> None:
        """Nothing to do: someone else runs it."""

    def kill(self) -> None:
        """Nothing to do: we cannot crash a server we do not own."""


def external_from_env(name: str, environ: Mapping[str, str] | None = None) -> ExternalServer | None:
    """The external server configured for ``name``, or None if the variable is unset/empty."""
    env_var = ENV_VARS[name]
    value = (os.environ if environ is None else environ).get(env_var, "").strip()
    return ExternalServer(name, value, env_var) if value else None
