"""``run``, ``migrate``, ``downgrade``: serve the service, manage its schema."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from typing import TYPE_CHECKING, Any

from class_management_service.cli.common import PROG, add_command, load_settings

if TYPE_CHECKING:
    from class_management_service.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves the app: uvloop and httptools (both from uvicorn[standard]; uvicorn's
    "auto" would fall back to asyncio/h11 silently if they were missing, here that is an error)
    with the request-head limits of ``http/server.py``, no uvicorn logging config or access log
    (our JSON logging and middleware do that). ``bench/baseline_app.py`` serves the same way."""
    from class_management_service.http.server import guarded_http_protocol

    return {
        "loop": "uvloop",
        "http": guarded_http_protocol(
            settings.max_request_head_bytes, settings.request_head_timeout_seconds
        ),
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = add_command(
        commands,
        "run",
        summary="apply migrations, then serve HTTP and run the Kafka consumer and workers",
        description=(
            "Apply the database migrations, then serve the HTTP API and run the background "
            "workers (Kafka consumer, outbox relay, timeout monitor) until SIGTERM."
        ),
        example=f"CLASS_MANAGEMENT_SERVICE_PORT=5002 {PROG} run",
        handler=_run,
    )
    run.add_argument("--port", type=int, help="HTTP port (default: $..._PORT or 5002)")
    run.add_argument(
        "--no-migrate", action="store_true", help="do not apply migrations before starting"
    )
    add_command(
        commands,
        "migrate",
        summary="apply all database migrations and exit",
        description="Apply every Alembic migration not applied yet to DATABASE_URL, then exit.",
        example=f"{PROG} migrate",
        handler=_migrate,
    )
    downgrade = add_command(
        commands,
        "downgrade",
        summary="revert migrations down to REVISION",
        description="Revert the database schema to REVISION (Alembic), then exit.",
        example=f"{PROG} downgrade -1",
        handler=_downgrade,
    )
    downgrade.add_argument("revision", help="target revision, e.g. 'base' or '-1'")


def _configured() -> Settings:
    from class_management_service.observability.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.service_name)
    return settings


def _migrate(_: argparse.Namespace) -> int:
    from class_management_service.migrations import runner

    runner.upgrade(_configured().database_url)
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    from class_management_service.migrations import runner

    runner.downgrade(_configured().database_url, args.revision)
    return 0


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _configured()
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done, which would
    # make a clean stop exit with -15; a stop that finished cleanly is a success.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # The migration check and the app imported with the cyclic collector off: the app's modules
    # leave ~230,000 objects (models, routes, mappers) that live as long as the process, and
    # collector passes over that growing heap were ~20 % of the import's CPU. Frozen, no later
    # collection walks them again.
    gc.disable()
    try:
        if not args.no_migrate:
            # Imported only here: Alembic is ~0.15 s of CPU (a tenth of a start) that a replica
            # started with --no-migrate never uses.
            from class_management_service.migrations import runner

            runner.upgrade(settings.database_url)
        from class_management_service.asgi import create_app
    finally:
        gc.freeze()
        gc.enable()
    uvicorn.run(
        create_app,
        factory=True,
        host=settings.host,
        port=args.port or settings.port,
        **uvicorn_options(settings),
    )
    return 0
