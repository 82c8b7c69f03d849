"""``class-management-service``: run the service or manage its database schema."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

import uvicorn

from class_management_service.http.server import guarded_http_protocol
from class_management_service.migrations import runner
from class_management_service.observability.logging import configure_logging
from class_management_service.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves the app: uvloop and httptools (both from uvicorn[standard]; uvicorn's
    "auto" would fall back to asyncio/h11 silently if they were missing, here that is an error)
    with the request-head limits of ``http/server.py``, no uvicorn logging config or access log
    (our JSON logging and middleware do that). ``bench/baseline_app.py`` serves the same way."""
    return {
        "loop": "uvloop",
        "http": guarded_http_protocol(
            settings.max_request_head_bytes, settings.request_head_timeout_seconds
        ),
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="class-management-service",
        description=(
            "Class Management Service of the HuleEdu platform. Configuration comes from "
            "CLASS_MANAGEMENT_SERVICE_* environment variables (DATABASE_URL, REDIS_URL, "
            "KAFKA_BOOTSTRAP_SERVERS, PORT, LOG_LEVEL, ...)."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="apply migrations, then serve HTTP and run the Kafka consumer and workers"
    )
    run.add_argument("--port", type=int, help="HTTP port (default: $..._PORT or 5002)")
    run.add_argument(
        "--no-migrate", action="store_true", help="do not apply migrations before starting"
    )
    commands.add_parser("migrate", help="apply all database migrations and exit")
    downgrade = commands.add_parser("downgrade", help="revert migrations down to REVISION")
    downgrade.add_argument("revision", help="target revision, e.g. 'base' or '-1'")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.service_name)
    if args.command == "migrate":
        runner.upgrade(settings.database_url)
        return 0
    if args.command == "downgrade":
        runner.downgrade(settings.database_url, args.revision)
        return 0
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done, which would
    # make a clean stop exit with -15; a stop that finished cleanly is a success.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if not args.no_migrate:
        runner.upgrade(settings.database_url)
    uvicorn.run(
        "class_management_service.asgi:create_app",
        factory=True,
        host=settings.host,
        port=args.port or settings.port,
        **uvicorn_options(settings),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
