"""PostgreSQL freezes for ~5 s in the middle of a stream (every server process stopped with
SIGSTOP: connections stay open, nothing answers, not even a refusal), then thaws (SIGCONT).

Unlike a stop, a freeze gives the service no error to react to: its statements and its health
probe just get no answer. /healthz must show it (503: the probe's bound) and the recovery (200);
nothing may be lost or stored twice, and the consumer must go on by itself once the server answers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.reliability.conftest import FaultRow, Fleet, ReliabilityReport, require_local
from tests.reliability.harness import (
    FaultMidStream,
    HealthWatch,
    StreamProducer,
    association_count,
    seeded_stream,
    verify,
    wait_committed_to_end,
    wait_for_rows,
    wait_until,
)

FREEZE_SECONDS = 5.0


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The parent pid is the 2nd field after the parenthesised command name.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def _freeze(postmaster: int) -> list[int]:
    """SIGSTOP the postmaster (so it forks nothing more), then every process it started."""
    os.kill(postmaster, signal.SIGSTOP)
    frozen = [postmaster]
    for child in _children(postmaster):
        try:
            os.kill(child, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        frozen.append(child)
    return frozen


def _thaw(frozen: list[int]) -> None:
    for pid in reversed(frozen):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            continue


async def test_database_frozen_mid_stream_loses_nothing_and_health_shows_it(
    fleet: Fleet,
    fault_database: str,
    postgres_server: Any,
    kafka_bootstrap: str,
    reliability_report: ReliabilityReport,
) -> None:
    require_local(postgres_server)
    stream = await seeded_stream(fault_database)
    total = len(stream.expected)
    topic, group = fleet.setting("author_matches_topic"), fleet.setting("consumer_group_id")
    await fleet.create_topics(3)
    service = await fleet.start()

    # The freeze starts once the stream is under way; the stream goes on meanwhile.
    fault_while_busy = FaultMidStream(stream, lambda: asyncio.sleep(0))
    frozen: list[int] = []
    try:
        async with HealthWatch(service) as health, StreamProducer(kafka_bootstrap) as producer:
            await wait_until(
                lambda: health.answering(200), within=30, what="/healthz 200", services=fleet.all
            )
            sending = asyncio.create_task(
                producer.stream(topic, stream.messages, pause=0.1, after_chunk=fault_while_busy)
            )
            await fault_while_busy.wait()
            rows_at_freeze = await association_count(fault_database)
            assert rows_at_freeze is not None
            assert rows_at_freeze < total
            frozen_at = time.monotonic()
            frozen = _freeze(postgres_server.pid)
            # The freeze itself lasts FREEZE_SECONDS: the scenario, not a synchronisation.
            await asyncio.sleep(FREEZE_SECONDS)
            thawed_at = time.monotonic()
            _thaw(frozen)
            frozen = []

            await wait_until(
                lambda: health.answered_since(200, thawed_at),
                within=60,
                what="/healthz 200 after the thaw",
                services=fleet.all,
            )
            await sending
            drained_at = await wait_for_rows(fault_database, total, within=90, services=fleet.all)
    finally:
        _thaw(frozen)

    healthy_at = health.showed_outage(frozen_at, thawed_at)

    verdict = await verify(fault_database, stream)
    assert verdict.exact, verdict.describe()
    await wait_committed_to_end(kafka_bootstrap, group, topic, services=fleet.all)

    reliability_report.record_fault(
        FaultRow.of_stream(
            "PostgreSQL frozen 5 s",
            stream,
            verdict,
            recovery=f"{healthy_at - thawed_at:.1f} s",
            notes=(
                f"every server process SIGSTOPped at {rows_at_freeze:,} rows for "
                f"{thawed_at - frozen_at:.1f} s, then SIGCONT; /healthz {health.summary()}; "
                "recovery = thaw to /healthz 200; "
                f"drained {drained_at - thawed_at:.1f} s after the thaw"
            ),
        )
    )
