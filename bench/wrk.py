"""HTTP load from a separate process: ``wrk`` (Debian package) driven by a generated Lua script.

The script sets the headers (and, for POSTs, a body with a unique e-mail per request) and, in
wrk's ``done()`` callback, prints one JSON line with the request count, errors and the latency
percentiles p50/p90/p95/p99 (``latency:percentile(n)``, microseconds), which is what we parse:
wrk's own ``--latency`` table has no p95.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.harness import BenchError, progress

RESULT_MARKER = "WRK_RESULT "

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, '
    .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\\n',
    "RESULT_MARKER", summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
end
""".replace("RESULT_MARKER", RESULT_MARKER)


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def get_script(headers: dict[str, str]) -> str:
    """Every request the same GET (wrk builds it once: the cheapest load generator)."""
    lines = [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _DONE


def post_script(path: str, headers: dict[str, str], body_template: str) -> str:
    """POSTs whose body is ``body_template`` with ``{n}`` replaced by a number unique to the
    request (per wrk thread, prefixed with the thread's number and the run's ``prefix``
    argument: ``wrk ... -- PREFIX``)."""
    before, after = body_template.split("{n}")
    header_lines = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()
    )
    return f"""
{header_lines}
wrk.method = "POST"
local counter = 0
local prefix = "x"
local threads = 0
thread_number = 0  -- a global: setup() sets it in each thread's own Lua state

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  prefix = args[1] or "x"
end

function request()
  counter = counter + 1
  local body = {_lua_string(before)} .. prefix .. "-" .. thread_number .. "-" .. counter
    .. {_lua_string(after)}
  return wrk.format(nil, {_lua_string(path)}, nil, body)
end
{_DONE}
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # connect/read/write errors, timeouts and non-2xx/3xx answers
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds


def ensure_wrk() -> str:
    """Path of ``wrk``; installed from Debian (``apt-get install -y wrk``) when we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError(
            "the HTTP benchmark needs wrk, a separate load-generating process: install it "
            "with `sudo apt-get install -y wrk` (Debian/Ubuntu) and run again"
        )
    progress("installing wrk from Debian (apt-get install -y wrk)")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=environment, capture_output=True, check=False).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=environment, capture_output=True)
        result = subprocess.run(install, env=environment, capture_output=True, text=True)
        if result.returncode:
            raise BenchError(f"apt-get install wrk failed:\n{result.stderr[-2000:]}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk was installed but is not on PATH")
    return found


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    arguments: tuple[str, ...] = (),
) -> WrkResult:
    """One wrk run; raises if wrk fails or nothing was answered."""
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    if arguments:
        argv += ["--", *arguments]
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if completed.returncode != 0:
        raise BenchError(f"wrk failed ({completed.returncode}): {completed.stderr[-2000:]}")
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            raw = json.loads(line.removeprefix(RESULT_MARKER))
            break
    else:
        raise BenchError(f"no result line in wrk's output:\n{completed.stdout[-2000:]}")
    if raw["requests"] == 0:
        raise BenchError(f"wrk got no answer from {url}:\n{completed.stdout[-2000:]}")
    errors = sum(
        raw[key]
        for key in (
            "connect_errors",
            "read_errors",
            "write_errors",
            "status_errors",
            "timeouts",
        )
    )
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        errors=errors,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )
