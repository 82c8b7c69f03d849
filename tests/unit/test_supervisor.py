from __future__ import annotations

import asyncio

import pytest

from class_management_service.workers import supervisor as supervisor_module
from class_management_service.workers.supervisor import Supervisor
from tests.waiting import wait_for


class FlakyWorker:
    """Crashes on its first two runs, then runs until cancelled."""

    name = "flaky"

    def __init__(self) -> None:
        self.runs = 0
        self.settled = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= 2:
            raise RuntimeError(f"boom {self.runs}")
        self.settled.set()
        await asyncio.Event().wait()


class ReturningWorker:
    name = "returns"

    async def run(self) -> None:
        return None


async def test_crashed_worker_is_restarted_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # The restarts' delays scaled down 50x (at most 10 ms and 20 ms instead of 0.5 s and 1 s):
    # what is checked is that the worker is restarted and reported, not how long it waited.
    monkeypatch.setattr(supervisor_module, "_BACKOFF_BASE_SECONDS", 0.01)
    worker = FlakyWorker()
    supervisor = Supervisor([worker])
    supervisor.start()
    await asyncio.wait_for(worker.settled.wait(), 10)
    state = supervisor.states["flaky"]
    assert worker.runs == 3
    assert state.restarts == 2
    assert state.running
    assert state.last_error == "RuntimeError: boom 2"
    assert supervisor.unhealthy() == {}
    await supervisor.stop()
    assert not state.running


async def test_worker_that_returns_counts_as_crashed() -> None:
    supervisor = Supervisor([ReturningWorker()])
    supervisor.start()
    await wait_for(
        lambda: "must run until" in supervisor.unhealthy().get("returns", ""),
        every=0,
        what="the crash to be recorded",
    )
    assert "must run until cancelled" in supervisor.unhealthy()["returns"]
    await supervisor.stop()
