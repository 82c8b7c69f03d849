"""Create a local server object by name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from local_infra import kafka
from local_infra.kafka import KafkaServer
from local_infra.ports import free_ports
from local_infra.postgres import PostgresServer
from local_infra.redis import RedisServer
from local_infra.server import LocalServer

PORT_COUNTS = {"postgres": 1, "redis": 1, "kafka": 2}  # kafka: client port, controller port


def new_local_server(
    name: str, directory: Path, *, cache_dir: Path, ports: Sequence[int] | None = None
) -> LocalServer:
    """A (not yet started) server ``name`` with data in ``directory``.

    ``ports`` are the ones it had before (see ``LocalServer.ports``); fresh free ports if None.
    """
    if name not in PORT_COUNTS:
        raise ValueError(f"unknown server {name!r}; expected one of {sorted(PORT_COUNTS)}")
    chosen = list(ports) if ports is not None else free_ports(PORT_COUNTS[name])
    if len(chosen) != PORT_COUNTS[name]:
        raise ValueError(f"{name} needs {PORT_COUNTS[name]} port(s), got {chosen}")
    if name == "postgres":
        return PostgresServer(directory, chosen[0], cache_dir=cache_dir)
    if name == "redis":
        return RedisServer(directory, chosen[0])
    return KafkaServer(directory, chosen[0], chosen[1], libs_dir=kafka.libs_dir(cache_dir))
