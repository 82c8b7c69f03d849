"""Runs the background workers, restarts a crashed one with backoff, reports their state.

A worker is an object with a ``name`` and an ``async run()`` that loops until cancelled. If
``run()`` raises, the supervisor logs it, marks the worker unhealthy (so /healthz says so) and
starts it again after an exponential backoff. Nothing ever disappears silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)


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
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
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
        backoff = self.initial_backoff_seconds
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
                state.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception(
                    "worker crashed; restarting",
                    extra={"worker": worker.name, "restart_in_s": backoff},
                )
            # A worker that ran fine for a while before crashing starts again from a short delay.
            if state.started_at and time.monotonic() - state.started_at > 60:
                backoff = self.initial_backoff_seconds
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_seconds)
