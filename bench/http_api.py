"""HTTP API throughput and latency of the real service process, under load from wrk.

    uv run python -m bench --only http [--quick]

Every GET route a teacher or the NLP service calls is loaded, the lists included; the page
depth benchmark (``bench/page_depth.py``) runs on the same service. The service runs as operators
run it (``python -m class_management_service run``: one uvicorn
worker, every background worker on, LOG_LEVEL=INFO) against a database seeded with SQL: one
teacher with 100 classes of 30 students. wrk (a separate process, 32 connections, one thread)
loads one route at a time; the baseline, measured in the same run and interleaved with the
routes, is a bare FastAPI endpoint returning a constant (``bench/baseline_app.py``) served with
the same uvicorn settings in a process of its own. Reported: requests/s and p50/p95/p99 latency,
min/median/max over the repetitions, and each route's median as a share of the baseline's.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench import page_depth
from bench.harness import Harness, ServiceProcess, Stats, progress, run_async
from bench.report import Section, Table, Target, bar_chart, number, ratio, stats_cells
from bench.wrk import WrkResult, ensure_wrk, get_script, post_script, run_wrk
from class_management_service.courses.domain import CourseCode
from class_management_service.courses.reference import course_id
from class_management_service.db import asyncpg_dsn

CONNECTIONS = 32
TEACHER = "bench-teacher"
WRITER = "bench-writer"
CLASSES = 100
STUDENTS_PER_CLASS = 30
BASELINE = "baseline: bare FastAPI GET"
ACCESS_LOG = "GET /v1/classes/{id} with ACCESS_LOG=true"
GET_TARGET_SHARE = 0.5  # of the baseline's req/s
GET_TARGET_P95_MS = 10.0
EARLIER_SERVICE = "the platform's earlier service: 176 req/s, p95 335 ms"
# Extra CLASS_MANAGEMENT_SERVICE_* settings of the service process (names without the prefix).
SERVICE_SETTINGS: dict[str, str] = {}


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    headers: dict[str, str]
    body_template: str | None = None  # POST body with "{n}" for a unique number
    target: bool = True  # whether the req/s and p95 targets apply (GETs)

    def script(self) -> str:
        if self.body_template is None:
            return get_script(self.headers)
        return post_script(self.path, self.headers, self.body_template)


@dataclass(frozen=True)
class Seeded:
    class_id: uuid.UUID
    student_id: uuid.UUID


@dataclass
class HttpResults:
    seconds_per_run: float
    repetitions: int
    runs: dict[str, list[WrkResult]] = field(default_factory=dict)
    cpu_percent: dict[str, list[float]] = field(default_factory=dict)  # of the server process
    routes: dict[str, Route] = field(default_factory=dict)
    service_peak_rss_mib: list[float] = field(default_factory=list)  # after each repetition
    baseline_peak_rss_mib: list[float] = field(default_factory=list)
    depth: page_depth.DepthResults | None = None

    def rps(self, name: str) -> Stats:
        return Stats.of([run.requests_per_second for run in self.runs[name]])

    def latency(self, name: str, percentile: str) -> Stats:
        return Stats.of([getattr(run, f"{percentile}_ms") for run in self.runs[name]])

    def errors(self, name: str) -> int:
        return sum(run.errors for run in self.runs[name])


async def seed(database_url: str) -> Seeded:
    """One teacher's 100 classes with 30 students each, by COPY (seconds, not minutes)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        classes = [uuid.uuid4() for _ in range(CLASSES)]
        members = {c: [uuid.uuid4() for _ in range(STUDENTS_PER_CLASS)] for c in classes}
        await connection.copy_records_to_table(
            "classes",
            records=[
                (c, f"Class {i:03d}", TEACHER, course_id(CourseCode.ENG5))
                for i, c in enumerate(classes)
            ],
            columns=("id", "name", "created_by_user_id", "course_id"),
        )
        await connection.copy_records_to_table(
            "students",
            records=[
                (s, f"First{n}", f"Last{n}", f"s{n}@{TEACHER}.example", TEACHER)
                for n, s in enumerate(s for students in members.values() for s in students)
            ],
            columns=("id", "first_name", "last_name", "email", "created_by_user_id"),
        )
        await connection.copy_records_to_table(
            "class_students",
            records=[(c, s) for c, students in members.items() for s in students],
            columns=("class_id", "student_id"),
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    await page_depth.seed(database_url)
    return Seeded(class_id=classes[0], student_id=members[classes[0]][0])


def routes(seeded: Seeded) -> list[Route]:
    teacher = {"X-User-ID": TEACHER}
    writer = {"X-User-ID": WRITER, "Content-Type": "application/json"}
    return [
        Route("GET /v1/classes/{id}", "GET", f"/v1/classes/{seeded.class_id}", teacher),
        Route(
            "GET /v1/classes/students/{id}",
            "GET",
            f"/v1/classes/students/{seeded.student_id}",
            teacher,
        ),
        Route("GET /v1/classes/?limit=50", "GET", "/v1/classes/?limit=50", teacher),
        Route(
            "GET /v1/classes/students?limit=50",
            "GET",
            "/v1/classes/students?limit=50",
            teacher,
        ),
        Route(
            "GET /v1/classes/{id}/students",
            "GET",
            f"/v1/classes/{seeded.class_id}/students",
            teacher,
        ),
        Route(
            "GET /v1/classes/{id}/roster",
            "GET",
            f"/v1/classes/{seeded.class_id}/roster",
            teacher,
        ),
        Route(
            "POST /v1/classes/students",
            "POST",
            "/v1/classes/students",
            writer,
            body_template=(
                '{"person_name": {"first_name": "Load", "last_name": "Test"}, '
                '"email": "load-{n}@bench.example"}'
            ),
            target=False,
        ),
    ]


def start_service(
    harness: Harness, database_url: str, name: str, **settings: str
) -> ServiceProcess:
    progress(f"starting the service process ({name})")
    return harness.start_service(name, database_url, log_level="INFO", **settings)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Target:
    name: str
    url: str
    script: Path
    server: ServiceProcess


def measure(harness: Harness, *, seconds_per_run: float, repetitions: int) -> HttpResults:
    wrk = ensure_wrk()
    database_url = harness.new_database("bench_http")
    seeded = run_async(seed(database_url))
    service = start_service(harness, database_url, "service", **SERVICE_SETTINGS)
    logged = start_service(
        harness, database_url, "service-access-log", **{**SERVICE_SETTINGS, "access_log": "true"}
    )
    baseline_app = harness.start_baseline_app()
    results = HttpResults(seconds_per_run=seconds_per_run, repetitions=repetitions)
    baseline_script = harness.scratch / "baseline.lua"
    baseline_script.write_text(get_script({}))
    targets = [
        _Target(BASELINE, f"{baseline_app.base_url}/constant", baseline_script, baseline_app)
    ]
    for index, route in enumerate(routes(seeded)):
        script = harness.scratch / f"route{index}.lua"
        script.write_text(route.script())
        results.routes[route.name] = route
        targets.append(_Target(route.name, service.base_url + route.path, script, service))
        if index == 0:
            targets.append(_Target(ACCESS_LOG, logged.base_url + route.path, script, logged))
    for target in targets:
        results.runs[target.name] = []
        results.cpu_percent[target.name] = []

    warmup = min(2.0, seconds_per_run)
    progress(f"HTTP: warming up each of {len(targets)} targets for {warmup:.0f} s")
    for target in targets:
        run_wrk(
            wrk,
            target.url,
            target.script,
            connections=CONNECTIONS,
            seconds=warmup,
            arguments=(f"warmup-{uuid.uuid4().hex[:6]}",),
        )
    for repetition in range(1, repetitions + 1):
        # Interleaved, so a noisy neighbour hurts every target alike rather than one.
        for target in targets:
            cpu_before = cpu_seconds(target.server.pid)
            result = run_wrk(
                wrk,
                target.url,
                target.script,
                connections=CONNECTIONS,
                seconds=seconds_per_run,
                arguments=(f"r{repetition}-{uuid.uuid4().hex[:6]}",),
            )
            cpu = 100 * (cpu_seconds(target.server.pid) - cpu_before) / result.seconds
            results.runs[target.name].append(result)
            results.cpu_percent[target.name].append(cpu)
            progress(
                f"HTTP {repetition}/{repetitions} {target.name}: "
                f"{result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                f"p95 {result.p95_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                f"errors {result.errors}, server CPU {cpu:.0f} %"
            )
        results.service_peak_rss_mib.append(service.peak_rss_mib())
        results.baseline_peak_rss_mib.append(baseline_app.peak_rss_mib())
    results.depth = page_depth.measure(
        wrk,
        service.base_url,
        harness.scratch,
        seconds=min(seconds_per_run, 5.0),
        repetitions=repetitions,
    )
    for server in (service, logged, baseline_app):
        harness.stop(server.popen)
    return results


def section(results: HttpResults) -> Section:
    intro = f"""
The real service process (`python -m class_management_service run`: one uvicorn worker with
uvloop and httptools, every background worker on, LOG_LEVEL=INFO) under load from wrk, a
separate process: {CONNECTIONS} connections, one wrk thread, {results.seconds_per_run:.0f} s per
route and repetition, {results.repetitions} repetitions interleaved across the routes. The
database holds one teacher's {CLASSES} classes of {STUDENTS_PER_CLASS} students. The baseline is
a bare FastAPI endpoint returning a constant (`bench/baseline_app.py`), served by the same
uvicorn settings in a process of its own, so the ratio shows what the service adds on top of
framework and server. The POST creates a student with a unique e-mail per request (its
`StudentCreatedV1` outbox row is relayed to Kafka by the same process meanwhile). Latencies are
wrk's (p95 from `latency:percentile(95)` in the Lua `done()` callback); "server CPU" is the
serving process's CPU time over the run (100 % = one core of the machine's
{os.cpu_count()}, shared with PostgreSQL and wrk).
"""
    section_ = Section("http", "HTTP API throughput and latency", intro)
    baseline = results.rps(BASELINE)
    table = Table(
        [
            "target",
            "min req/s",
            "median",
            "max",
            "vs baseline",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "errors",
            "server CPU",
        ]
    )
    for name in results.runs:
        rps = results.rps(name)
        table.rows.append(
            [
                name,
                *stats_cells(rps),
                ratio(rps.ratio_to(baseline)),
                *(number(results.latency(name, p).median, 1) for p in ("p50", "p95", "p99")),
                str(results.errors(name)),
                f"{Stats.of(results.cpu_percent[name]).median:.0f} %",
            ]
        )
    section_.tables.append(("Latencies are the medians over the repetitions.", table))
    for name, route in results.routes.items():
        if not route.target:
            continue
        rps, p95 = results.rps(name), results.latency(name, "p95")
        section_.targets.append(
            Target(
                f"{name} >= {GET_TARGET_SHARE:.0%} of the baseline's req/s",
                rps,
                "req/s",
                baseline=baseline,
                at_least=GET_TARGET_SHARE,
                share=True,
                platform=176,
            )
        )
        section_.targets.append(
            Target(
                f"{name} p95 <= {GET_TARGET_P95_MS:.0f} ms",
                p95,
                "ms",
                baseline=results.latency(BASELINE, "p95"),
                at_most=GET_TARGET_P95_MS,
                digits=1,
            )
        )
    with_log = results.rps(ACCESS_LOG).median
    without_log = results.rps(next(iter(results.routes))).median
    section_.notes.append(
        f"For comparison, {EARLIER_SERVICE}. The access log at INFO (`ACCESS_LOG=true`, one "
        f"JSON line per request) costs {1 - with_log / without_log:.0%} of the GET's "
        "throughput in this run; it is off by default (the line goes out at DEBUG, 5xx at "
        "WARNING always), see the profile findings."
    )
    names = list(results.runs)
    short = [
        n.replace("baseline: ", "").replace(" with ACCESS_LOG=true", " +access log") for n in names
    ]

    def throughput(path: Path) -> None:
        bar_chart(
            path,
            title=f"Requests/s, {CONNECTIONS} connections (median, min-max whiskers)",
            ylabel="requests/s",
            labels=short,
            series=[("req/s", [results.rps(n) for n in names])],
            horizontal_line=(GET_TARGET_SHARE * baseline.median, "GET target"),
        )

    def latency(path: Path) -> None:
        bar_chart(
            path,
            title="Latency percentiles (median over repetitions, min-max whiskers)",
            ylabel="ms",
            labels=short,
            series=[(p, [results.latency(n, p) for n in names]) for p in ("p50", "p95", "p99")],
            horizontal_line=(GET_TARGET_P95_MS, "GET p95 target"),
        )

    if results.depth is not None:
        page_depth.extend(section_, results.depth)
    section_.plots.append(
        ("http_throughput.png", "HTTP throughput, service vs baseline", throughput)
    )
    section_.plots.append(("http_latency.png", "HTTP latency percentiles", latency))
    return section_
