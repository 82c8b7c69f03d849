"""pytest plugin: real PostgreSQL / Redis / Kafka servers for the test session.

Register with ``pytest_plugins = ["local_infra.pytest_plugin"]`` in the top-level conftest.

The server fixtures are session-scoped and lazy: a server starts only when the first test that
needs it runs, so a PostgreSQL-only run never starts Redis or Kafka. Each session gets fresh
servers on free ports under ``<root>/test-runs/<pid>-<random>/``; they are stopped and the
directory removed at the end of the session. If a ``CLASS_MANAGEMENT_SERVICE_*`` variable names
a server, that external server is used instead. A server that cannot start is an error (with
the reason and the server's log tail), never a skip.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local_infra.external import ExternalServer
from local_infra.paths import infra_root
from local_infra.postgres import PostgresServer
from local_infra.server import DatabaseServer, Server
from local_infra.session import SessionInfra

LOG_NAME = "infra.log"


def _announcer(config: pytest.Config, root: Path) -> Callable[[str], None]:
    """Print a line so it is seen with and without ``-s``, and append it to infra.log."""
    log_path = root / "test-runs" / LOG_NAME

    def announce(message: str) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        reporter: Any = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:  # e.g. -p no:terminal, or an xdist worker
            print(message, file=sys.stderr, flush=True)
            return
        capture: Any = config.pluginmanager.get_plugin("capturemanager")
        # Fixture setup runs while output is captured; step outside capturing for the line.
        suspended = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
        with suspended:
            reporter.write_line(message)

    return announce


@pytest.fixture(scope="session")
def local_infra_root() -> Path:
    """``<repo>/.infra`` (or ``$LOCAL_INFRA_HOME``): caches, dev servers, test runs."""
    return infra_root()


@pytest.fixture(scope="session")
def local_infra_session(
    request: pytest.FixtureRequest, local_infra_root: Path
) -> Iterator[SessionInfra]:
    """This session's servers; its ``.directory`` is a scratch dir removed at the end."""
    infra = SessionInfra(local_infra_root, _announcer(request.config, local_infra_root))
    yield infra
    infra.close()


@pytest.fixture(scope="session")
def postgres_server(local_infra_session: SessionInfra) -> DatabaseServer:
    """PostgreSQL (superuser ``cms``, trust auth). ``.url`` is for database ``postgres``;
    ``.url_for(name)`` for others. Stays up for the whole session."""
    server = local_infra_session.server("postgres")
    assert isinstance(server, PostgresServer | ExternalServer)
    return server


@pytest.fixture(scope="session")
def redis_server(local_infra_session: SessionInfra) -> Server:
    """Redis; ``.url`` is ``redis://127.0.0.1:<port>/0``."""
    return local_infra_session.server("redis")


@pytest.fixture(scope="session")
def kafka_server(local_infra_session: SessionInfra) -> Server:
    """Kafka broker; ``.url`` is the bootstrap servers string ``127.0.0.1:<port>``."""
    return local_infra_session.server("kafka")
