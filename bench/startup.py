"""Cold start: process start to the first ``GET /healthz`` 200, with the servers already up.

    ./dev bench --only startup

Each repetition starts ``python -m class_management_service run`` as deployed (migrations
checked at start, every background worker on) on a migrated database, with PostgreSQL, Redis
and Kafka running, and times from ``Popen`` until ``/healthz`` answers 200 (every dependency and
worker up). The baseline is the bare FastAPI app (``bench/baseline_app.py``, same uvicorn
settings) from ``Popen`` to its first answer: the cost of Python, FastAPI and uvicorn alone.
"""

from __future__ import annotations

import http.client
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import BenchError, Harness, Stats, progress
from bench.report import Section, Table, Target, bar_chart, ratio, stats_cells
from local_infra.ports import free_port

TARGET_SECONDS = 2.0
SERVICE = "service: `run` to /healthz 200"
BASELINE = "baseline: bare FastAPI app to its first answer"
_POLL_SECONDS = 0.01


def _status(port: int, path: str) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def _seconds_to(harness: Harness, argv: list[str], env: dict[str, str] | None, path: str) -> float:
    """Start ``argv`` with ``--port``, time until ``path`` answers 200, stop it."""
    port = free_port()
    started = time.perf_counter()
    popen, log_path = harness.spawn([*argv, "--port", str(port)], env=env, log_name="startup")
    try:
        deadline = started + 60.0
        while time.perf_counter() < deadline:
            if popen.poll() is not None:
                raise BenchError(f"{argv} exited with {popen.returncode}: {log_path.read_text()}")
            if _status(port, path) == 200:
                return time.perf_counter() - started
            time.sleep(_POLL_SECONDS)
        raise BenchError(f"{argv}: {path} not 200 within 60 s: {log_path.read_text()[-2000:]}")
    finally:
        harness.stop(popen)


@dataclass
class StartupResults:
    seconds: dict[str, list[float]] = field(default_factory=lambda: {SERVICE: [], BASELINE: []})

    def stats(self, name: str) -> Stats:
        return Stats.of(self.seconds[name])


def measure(harness: Harness, *, repetitions: int) -> StartupResults:
    database_url = harness.new_database("bench_startup")
    env = harness.service_env(database_url)
    service = [sys.executable, "-m", "class_management_service", "run"]
    baseline = [sys.executable, "-m", "bench.baseline_app"]
    results = StartupResults()
    # One start of each first: the page cache then holds the code for every counted start.
    _seconds_to(harness, service, env, "/healthz")
    for repetition in range(1, repetitions + 1):
        results.seconds[BASELINE].append(_seconds_to(harness, baseline, None, "/constant"))
        results.seconds[SERVICE].append(_seconds_to(harness, service, env, "/healthz"))
        progress(
            f"startup {repetition}/{repetitions}: service {results.seconds[SERVICE][-1]:.2f} s, "
            f"baseline {results.seconds[BASELINE][-1]:.2f} s"
        )
    return results


def section(results: StartupResults) -> Section:
    intro = """
Seconds from starting the process to the first `GET /healthz` answered 200 (PostgreSQL, Redis
and Kafka already up; the database migrated, so the start-up migration check finds nothing to
do; the consumer, outbox relay and timeout monitor running), next to the bare FastAPI app
served by the same uvicorn settings from start to its first answer. The health check polls
every 10 ms.
"""
    section_ = Section("startup", "Cold start", intro)
    baseline = results.stats(BASELINE)
    table = Table(["process", "min s", "median s", "max s", "vs baseline"])
    for name in (BASELINE, SERVICE):
        stats = results.stats(name)
        table.rows.append([name, *stats_cells(stats, 2), ratio(stats.ratio_to(baseline))])
    section_.tables.append(("", table))
    section_.targets.append(
        Target(
            f"cold start to /healthz 200 <= {TARGET_SECONDS:.0f} s",
            results.stats(SERVICE),
            "s",
            baseline=baseline,
            at_most=TARGET_SECONDS,
            digits=2,
        )
    )

    def draw(path: Path) -> None:
        bar_chart(
            path,
            title="Process start to first 200 (median, min-max whiskers)",
            ylabel="seconds",
            labels=["bare FastAPI app", "service /healthz"],
            series=[("seconds", [baseline, results.stats(SERVICE)])],
            horizontal_line=(TARGET_SECONDS, "target"),
        )

    section_.plots.append(("startup.png", "Cold start", draw))
    return section_
