"""Real PostgreSQL, Redis and Kafka (KRaft) servers on loopback, without Docker.

Used by the dev command (`local-infra up|down|status|env`, see :mod:`local_infra.cli`) and by
the pytest plugin :mod:`local_infra.pytest_plugin` (fixtures ``postgres_server``,
``redis_server``, ``kafka_server``, ``local_infra_session``, ``local_infra_root``).
"""

from local_infra.dev import DEV_DATABASE, DevStack
from local_infra.external import ENV_VARS, ExternalServer, external_from_env
from local_infra.factory import new_local_server
from local_infra.install import InstallError, ensure_installed
from local_infra.kafka import KafkaServer
from local_infra.paths import infra_root
from local_infra.ports import free_port, free_ports
from local_infra.postgres import PostgresServer
from local_infra.process import ServerStartError
from local_infra.redis import RedisServer
from local_infra.server import SERVER_NAMES, DatabaseServer, LocalServer, Server
from local_infra.session import SessionInfra

__all__ = [
    "DEV_DATABASE",
    "ENV_VARS",
    "SERVER_NAMES",
    "DatabaseServer",
    "DevStack",
    "ExternalServer",
    "InstallError",
    "KafkaServer",
    "LocalServer",
    "PostgresServer",
    "RedisServer",
    "Server",
    "ServerStartError",
    "SessionInfra",
    "ensure_installed",
    "external_from_env",
    "free_port",
    "free_ports",
    "infra_root",
    "new_local_server",
]
