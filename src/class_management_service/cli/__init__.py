"""``class-management-service``: run the service, and the jobs operators run beside it.

One module per concern registers its commands (``serve``: run/migrate/downgrade; ``check``;
``roster``: import-roster; ``outbox``; ``dead_letters``). Each module imports only argparse at
the top: what a command needs (SQLAlchemy, aiokafka, uvicorn, ...) is imported when it runs, so
``--help`` and every command start without loading the others' dependencies.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from class_management_service.cli import check, dead_letters, outbox, roster, serve
from class_management_service.cli.common import PROG, fail, with_example


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Class Management Service of the HuleEdu platform. Configuration comes from "
            "CLASS_MANAGEMENT_SERVICE_* environment variables (DATABASE_URL, REDIS_URL, "
            "KAFKA_BOOTSTRAP_SERVERS, PORT, LOG_LEVEL, ...). Run `check` first."
        ),
        **with_example(f"{PROG} check\n  {PROG} dead-letters list --reason unknown_class"),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, check, roster, outbox, dead_letters):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
