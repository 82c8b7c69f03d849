"""Install whatever the requested servers need and is missing on this machine.

* PostgreSQL / Redis / Java / Maven: Debian packages via apt-get (only when running as root;
  otherwise fail with the command to run).
* Kafka: the broker jars via Maven into ``<root>/cache/kafka-libs-<version>``, plus a one-time
  JVM class-data archive that makes every broker start ~0.6 s faster.
* PostgreSQL: the initdb template that new clusters are copied from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from local_infra import kafka, pg_cluster, redis
from local_infra.paths import infra_root, kafka_pom_path
from local_infra.process import ServerStartError

Log = Callable[[str], None]

_APT_HINTS = {
    "postgres": "postgresql-15 (or set CLASS_MANAGEMENT_SERVICE_DATABASE_URL)",
    "redis": "redis-server (or set CLASS_MANAGEMENT_SERVICE_REDIS_URL)",
    "java": "default-jre-headless (Java >= 11, for Kafka)",
    "maven": "maven (resolves the Kafka jars)",
}


class InstallError(ServerStartError):
    """Something a server needs is missing and could not be installed."""


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise InstallError(f"{what} failed (exit code {result.returncode}):\n{output}")


def _apt_has(package: str) -> bool:
    result = subprocess.run(["apt-cache", "show", package], capture_output=True, check=False)
    return result.returncode == 0


def apt_install(packages: list[str], missing: str, log: Log) -> None:
    """Install Debian ``packages`` (``missing`` says what they are, for a user who must)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise InstallError(
            "missing on this machine (and not root with apt-get, so not "
            f"installing them automatically):\n{missing}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log("local-infra: apt-get update")
    run(["apt-get", "update"], "apt-get update", env)
    log(f"local-infra: apt-get install {' '.join(packages)}")
    run(["apt-get", "install", "-y", "--no-install-recommends", *packages], "apt-get install", env)


def _apt_install(needs: list[str], log: Log) -> None:
    """Install the Debian packages behind ``needs`` (keys of _APT_HINTS)."""
    packages = {
        "postgres": "postgresql-15" if _apt_has("postgresql-15") else "postgresql",
        "redis": "redis-server",
        "java": "default-jre-headless",
        "maven": "maven",
    }
    missing = "\n".join(f"  - {_APT_HINTS[need]}" for need in needs)
    apt_install([packages[need] for need in needs], missing, log)


def ensure_kafka_libs(cache_dir: Path, log: Log = stderr_log) -> Path:
    """The directory with the broker jars, resolved with Maven if not there yet."""
    libs = kafka.libs_dir(cache_dir)
    if kafka.libs_complete(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InstallError("Maven (mvn) not found; it is needed once to fetch the Kafka jars")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Copy into a private directory and rename when complete, so an interrupted copy is
    # never mistaken for a good one (the marker file says "complete").
    staging = cache_dir / f".{libs.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    pom = kafka_pom_path()
    log(f"local-infra: fetching Kafka {kafka.kafka_version()} jars with Maven into {libs}")
    run(
        [
            mvn,
            *("-q", "-B", "-f", str(pom), "dependency:copy-dependencies"),
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ],
        "mvn dependency:copy-dependencies",
    )
    (staging / kafka.LIBS_MARKER).write_text("")
    shutil.rmtree(libs, ignore_errors=True)  # a half-copied dir from an older version of this
    try:
        staging.rename(libs)
    except OSError:  # a concurrent process got there first
        shutil.rmtree(staging, ignore_errors=True)
    return libs


def ensure_installed(
    names: Iterable[str], *, root: Path | None = None, log: Log = stderr_log
) -> None:
    """Make sure the servers in ``names`` ("postgres", "redis", "kafka") can be started."""
    wanted = set(names)
    unknown = wanted - {"postgres", "redis", "kafka"}
    if unknown:
        raise ValueError(f"unknown servers: {sorted(unknown)}")
    cache_dir = (root or infra_root()) / "cache"

    needs: list[str] = []
    if "postgres" in wanted and pg_cluster.find_bin_dir() is None:
        needs.append("postgres")
    if "redis" in wanted and redis.find_executable() is None:
        needs.append("redis")
    if "kafka" in wanted:
        if kafka.find_java() is None:
            needs.append("java")
        if not kafka.libs_complete(kafka.libs_dir(cache_dir)) and shutil.which("mvn") is None:
            needs.append("maven")
    if needs:
        _apt_install(needs, log)

    if "postgres" in wanted:
        bin_dir = pg_cluster.find_bin_dir()
        if bin_dir is None:
            raise InstallError("PostgreSQL binaries still missing after installation")
        version = pg_cluster.major_version(bin_dir)
        if not (cache_dir / f"pg-initdb-{version}" / "PG_VERSION").is_file():
            log(f"local-infra: creating the PostgreSQL {version} initdb template (once)")
            pg_cluster.ensure_template(cache_dir, bin_dir)
    if "kafka" in wanted:
        libs = ensure_kafka_libs(cache_dir, log)
        java = kafka.find_java()
        if java is not None and kafka.class_archive_pending(libs, java):
            log("local-infra: building the Kafka JVM class-data archive (once, ~5 s)")
            started = time.monotonic()
            if kafka.build_class_archive(cache_dir, libs, java) is None:
                log(
                    "local-infra: could not build the class-data archive; Kafka will start "
                    f"without it ({time.monotonic() - started:.1f} s spent)"
                )
