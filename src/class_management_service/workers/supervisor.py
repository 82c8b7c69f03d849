"""Runs the background workers, restarts a crashed one with backoff, reports their state.

A worker is an object with a ``name`` and an ``async run()`` that loops until cancelled. If
``run()`` raises, the supervisor logs it, marks the worker unhealthy (so /healthz says so) and
starts it again after an exponential backoff. Nothing ever disappears silently.

A database that is unavailable or busy (down, a lock or pool wait that ran out) is not a crash:
workers catch ``errors.DATABASE_UNAVAILABLE`` around each pass and wait with a :class:`Backoff`,
so a lock held for a minute does not turn into a crash loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from class_management_service.errors import describe
from class_management_service.retry import backoff_seconds

logger = logging.getLogger(__name__)


_BACKOFF_BASE_SECONDS = 0.5
_BACKOFF_CAP_SECONDS = 30.0


class Backoff:
    """Delays between consecutive failed attempts (:func:`retry.backoff_seconds`: full jitter
    under 0.5 s doubling, capped at 30 s); :meth:`reset` after a success."""

    def __init__(self) -> None:
        self.failures = 0  # consecutive
        self.last_error: str | None = None

    def next_delay(self) -> float:
        self.failures += 1
        return backoff_seconds(self.failures, _BACKOFF_BASE_SECONDS, _BACKOFF_CAP_SECONDS)

    def reset(self) -> None:
        self.failures, self.last_error = 0, None

    async def wait_after(self, exc: BaseException, *, worker: str) -> None:
        """Log a failed pass of ``worker`` and sleep the next delay."""
        delay = self.next_delay()
        self.last_error = describe(exc, 500)
        logger.warning(
            "worker pass failed: database unavailable; backing off",
            extra={"worker": worker, "retry_in_s": delay, "error": self.last_error},
        )
        await asyncio.sleep(delay)


class Worker(Protocol):
    @property
    def name(self) -> str: ...

    async def run(self) -> None: ...


@dataclass
class WorkerState:
    name: str
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    started_at: float | None = None


@dataclass
class Supervisor:
    workers: list[Worker]
    states: dict[str, WorkerState] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        for worker in self.workers:
            self.states[worker.name] = WorkerState(worker.name)
            self._tasks.append(asyncio.create_task(self._keep_running(worker), name=worker.name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def unhealthy(self) -> dict[str, str]:
        return {
            name: state.last_error or "not running"
            for name, state in self.states.items()
            if not state.running
        }

    async def _keep_running(self, worker: Worker) -> None:
        state = self.states[worker.name]
        backoff = Backoff()
        while True:
            state.running, state.started_at = True, time.monotonic()
            try:
                await worker.run()
                raise RuntimeError("worker returned; workers must run until cancelled")
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as exc:
                state.running = False
                state.restarts += 1
                state.last_error = describe(exc)
                # A worker that ran fine for a while before crashing starts again quickly.
                if state.started_at and time.monotonic() - state.started_at > 60:
                    backoff.reset()
                delay = backoff.next_delay()
                logger.exception(
                    "worker crashed; restarting",
                    extra={"worker": worker.name, "restart_in_s": delay},
                )
            await asyncio.sleep(delay)
