"""What a consumer's health check looks at: progress, not existence."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from class_management_service.observability.health import CheckResult, HealthCheck


@dataclass
class ConsumerProgress:
    """Kept up to date by the consumer loop (monotonic clock)."""

    created_at: float
    running: bool = False
    last_poll_at: float | None = None
    last_batch_at: float | None = None
    failing_since: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    assigned: set[TopicPartition] = field(default_factory=set)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    lag: dict[TopicPartition, int] = field(default_factory=dict)


def progress_check(
    progress: ConsumerProgress, *, topic: str, group_id: str, stall_seconds: float
) -> HealthCheck:
    """Polling recently, batches not failing for long, lag."""
    stall = stall_seconds

    async def check() -> CheckResult:
        now = time.monotonic()
        p = progress
        poll_age = None if p.last_poll_at is None else round(now - p.last_poll_at, 3)
        details: dict[str, Any] = {
            "topic": topic,
            "group_id": group_id,
            "running": p.running,
            "assigned_partitions": sorted(tp.partition for tp in p.assigned),
            "last_poll_age_s": poll_age,
            "lag": {str(tp.partition): lag for tp, lag in sorted(p.lag.items())},
            "total_lag": sum(p.lag.values()),
            "committed_offsets": {
                str(tp.partition): offset for tp, offset in sorted(p.committed.items())
            },
        }
        if p.consecutive_failures:
            details["consecutive_failures"] = p.consecutive_failures
            details["last_error"] = p.last_error
        if p.last_poll_at is None:
            # Starting: joining the group may take a moment, but not forever.
            ok = now - p.created_at < stall
            if not ok:
                details["error"] = f"no poll completed within {stall:g}s of start"
        elif now - p.last_poll_at >= stall:
            ok = False
            details["error"] = f"no poll for {now - p.last_poll_at:.1f}s (limit {stall:g}s)"
        elif p.failing_since is not None and now - p.failing_since >= stall:
            ok = False
            details["error"] = f"batches failing for {now - p.failing_since:.1f}s"
        else:
            ok = True
        return CheckResult(ok=ok, details=details)

    return check
