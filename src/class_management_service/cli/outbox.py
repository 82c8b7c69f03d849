"""``outbox status`` and ``outbox requeue``: the transactional outbox's queue."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import TYPE_CHECKING

from class_management_service.cli.common import (
    PROG,
    add_command,
    database_sessions,
    fail,
    run_job,
    with_example,
)

if TYPE_CHECKING:
    from class_management_service.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outbox = commands.add_parser(
        "outbox",
        help="the outbox's queue: status, requeue",
        description="The transactional outbox: events written with a change, waiting for Kafka.",
        **with_example(f"{PROG} outbox status"),
    )
    actions = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = add_command(
        actions,
        "status",
        summary="pending and failed counts, age of the oldest pending event",
        description=(
            "How many events wait to be published (pending), how many gave up after "
            "OUTBOX_MAX_ATTEMPTS (failed), and how old the oldest pending one is."
        ),
        example=f"{PROG} outbox status --json",
        handler=_status,
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    requeue = add_command(
        actions,
        "requeue",
        summary="make failed (or chosen) events pending again",
        description=(
            "Reset failed events, or the unpublished events named by --id, to pending with "
            "their attempts at 0, due now, and wake the relays. Published events are never "
            "requeued. Fix what made them fail first (see `outbox status`, /metrics)."
        ),
        example=f"{PROG} outbox requeue --failed",
        handler=_requeue,
    )
    requeue.add_argument("--failed", action="store_true", help="every failed event")
    requeue.add_argument(
        "--id",
        dest="ids",
        action="append",
        type=uuid.UUID,
        default=[],
        metavar="ID",
        help="this event (its event_id; repeat for more)",
    )


def _status(args: argparse.Namespace) -> int:
    async def job(settings: Settings) -> int:
        from class_management_service.outbox.claims import queue_stats

        async with database_sessions(settings) as session_factory:
            stats = await queue_stats(session_factory)
        if args.json:
            print(
                json.dumps(
                    {
                        "pending": stats.pending,
                        "failed": stats.failed,
                        "oldest_pending_age_seconds": round(stats.oldest_pending_age_seconds, 3),
                    }
                )
            )
        else:
            print(f"pending: {stats.pending}")
            print(f"failed:  {stats.failed}")
            print(f"oldest pending: {stats.oldest_pending_age_seconds:.1f} s old")
        return 0

    return run_job(job)


def _requeue(args: argparse.Namespace) -> int:
    if not args.failed and not args.ids:
        return fail("name what to requeue: --failed and/or --id ID")

    async def job(settings: Settings) -> int:
        from class_management_service.outbox.admin import requeue

        async with database_sessions(settings) as session_factory:
            requeued = await requeue(session_factory, failed=args.failed, ids=args.ids)
        print(f"requeued {len(requeued)} event(s)")
        for event_id in requeued:
            print(event_id)
        missing = set(args.ids) - set(requeued)
        if missing:
            return fail(
                "not requeued (unknown or already published): "
                + ", ".join(str(i) for i in sorted(missing))
            )
        return 0

    return run_job(job)
