"""A single-node Apache Kafka broker in KRaft combined mode (broker + controller, no ZooKeeper).

The broker's jars come from Maven (see install.py) into ``<root>/cache/kafka-libs-<version>``;
each server instance has its own data dir, formatted once, so stop/start keeps topics and
messages. Startup is tuned for a 2-core machine: serial GC, C1-only JIT, and an AppCDS archive
of the classes a broker loads at startup (built once by install.py), about 2.0 s -> 0.8 s.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from local_infra.paths import kafka_pom_path
from local_infra.ports import can_connect, free_ports
from local_infra.process import ServerStartError
from local_infra.server import LocalServer

# Logged by kafka.server.KafkaRaftServer once the broker is registered, unfenced and serving.
STARTED_MARKER = "Kafka Server started"
LIBS_MARKER = ".complete"  # written after the jars were copied completely

_LOG4J = """\
# Only warnings, except the one INFO line local-infra waits for.
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""

# Measured on 2 cores: serial GC and C1-only JIT start the JVM ~30% faster; the broker under
# test load never runs long enough for C2 to pay off.
_JVM_OPTIONS = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


def kafka_version(pom: Path | None = None) -> str:
    """The <kafka.version> property of infra/kafka/pom.xml (single source of truth)."""
    path = pom or kafka_pom_path()
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", path.read_text())
    if match is None:
        raise ServerStartError(f"{path} has no <kafka.version> property")
    return match.group(1)


def libs_dir(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-libs-{kafka_version()}"


def libs_complete(libs: Path) -> bool:
    return (libs / LIBS_MARKER).is_file()


def find_java() -> Path | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return Path(java_home) / "bin" / "java"
    found = shutil.which("java")
    return Path(found) if found else None


def class_archive_path(libs: Path, java: Path) -> Path:
    """Where the AppCDS archive for this JVM binary + jar set lives (next to the jars).

    An archive only fits the exact JVM build that wrote it, so the name covers the JVM binary.
    """
    real = java.resolve()
    info = real.stat()
    key = f"{real}|{info.st_size}|{info.st_mtime_ns}|{libs.resolve()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return libs.parent / f"{libs.name}-{digest}.jsa"


def class_archive_pending(libs: Path, java: Path) -> bool:
    """True if no archive exists yet and no earlier attempt to build one failed."""
    archive = class_archive_path(libs, java)
    return not archive.is_file() and not _failed_marker(archive).is_file()


def _failed_marker(archive: Path) -> Path:
    return archive.with_name(archive.name + ".failed")


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """What `kafka-storage random-uuid` prints: URL-safe base64 of 16 random bytes, no '='.

    Like Kafka's own ``Uuid.randomUuid``, an id starting with '-' (1 in 64) is drawn again:
    ``kafka-storage format -t -abc...`` reads it as an option and fails.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaServer(LocalServer):
    """Kafka broker+controller on 127.0.0.1:<port> (controller quorum on <controller_port>)."""

    name = "kafka"

    def __init__(
        self,
        directory: Path,
        port: int,
        controller_port: int,
        *,
        libs_dir: Path,
        java: Path | None = None,
        heap: str = "512m",
        extra_jvm_options: Sequence[str] = (),
        use_class_archive: bool = True,
    ) -> None:
        """``extra_jvm_options`` go to the broker JVM only (not to `kafka-storage format`)."""
        super().__init__(directory, port)
        self.controller_port = controller_port
        self.libs_dir = libs_dir
        found = java or find_java()
        if found is None:
            raise ServerStartError("java not found (JAVA_HOME or PATH); install a JDK/JRE >= 11")
        self.java = found
        self.heap = heap
        self.extra_jvm_options = tuple(extra_jvm_options)
        self.use_class_archive = use_class_archive
        self.data_dir = self.directory / "data"
        self.properties_path = self.directory / "server.properties"
        self.log4j_path = self.directory / "log4j.properties"

    @property
    def url(self) -> str:
        """Bootstrap servers string, ``127.0.0.1:<port>``."""
        return f"{self.host}:{self.port}"

    @property
    def bootstrap_servers(self) -> str:
        return self.url

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.controller_port)

    def server_properties(self) -> dict[str, str]:
        plain = f"{self.host}:{self.port}"
        controller = f"{self.host}:{self.controller_port}"
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{controller}",
            "listeners": f"PLAINTEXT://{plain},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{plain}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # A single broker: every internal topic must make do with one replica.
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "auto.create.topics.enable": "true",
            # Tests want consumers to join at once and to be allowed short session timeouts.
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "1000",
            # After a crash (kill()) the restarted controller keeps the old broker registration
            # until its session times out (default 9 s) before the broker may register again.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            # Nothing lives long enough to need retention checks; don't spend CPU on them.
            "log.retention.check.interval.ms": "3600000",
            # No no-op record in the metadata log every 500 ms: with one node nothing reads
            # them, and an idle broker used ~25 % less CPU without (0.93 -> 0.69 s per 40 s).
            "metadata.max.idle.interval.ms": "0",
            # Two cores: the defaults (3 network, 8 I/O threads) only add context switches.
            "num.network.threads": "2",
            "num.io.threads": "4",
        }

    def prepare(self) -> None:
        if not libs_complete(self.libs_dir):
            raise ServerStartError(
                f"Kafka jars missing in {self.libs_dir}; run local_infra.install.ensure_installed"
                "(['kafka']) or `local-infra up kafka` first"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [f"{key}={value}" for key, value in self.server_properties().items()]
        self.properties_path.write_text("\n".join(lines) + "\n")
        self.log4j_path.write_text(_LOG4J)
        if not (self.data_dir / "meta.properties").is_file():
            self._format()

    def _java(self, main_class: str, *args: str, broker: bool = False) -> list[str]:
        argv = [str(self.java)]
        if broker:  # the short-lived tools (format) do fine with the JVM's default heap
            argv.append(f"-Xmx{self.heap}")
        argv += _JVM_OPTIONS
        archive = class_archive_path(self.libs_dir, self.java)
        if self.use_class_archive and archive.is_file():
            argv.append(f"-XX:SharedArchiveFile={archive}")
        if broker:
            argv += self.extra_jvm_options
        argv += [
            "-cp",
            f"{self.libs_dir}/*",  # expanded by the JVM itself, not by a shell
            f"-Dlog4j.configuration=file:{self.log4j_path}",
            f"-Dkafka.logs.dir={self.directory}",
            main_class,
            *args,
        ]
        return argv

    def _format(self) -> None:
        """Write meta.properties (cluster id, node id) into an empty data dir, once."""
        argv = self._java(
            "kafka.tools.StorageTool",
            *("format", "-t", new_cluster_id(), "-c", str(self.properties_path)),
        )
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServerStartError(
                f"kafka-storage format failed ({result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )

    def command(self) -> Sequence[str]:
        return self._java("kafka.Kafka", str(self.properties_path), broker=True)

    def is_ready(self) -> bool:
        return STARTED_MARKER in self.process.log_since_spawn() and can_connect(
            self.host, self.port
        )


def build_class_archive(cache_dir: Path, libs: Path, java: Path | None = None) -> Path | None:
    """Create the AppCDS archive by starting and stopping a throwaway broker (~5 s, once).

    Returns the archive, or None if this JVM cannot make one (the broker then just starts
    slower). The archive is verified before it is put in place: a truncated archive would make
    every later JVM crash with SIGBUS instead of falling back.
    """
    java = java or find_java()
    if java is None:
        return None
    archive = class_archive_path(libs, java)
    if not class_archive_pending(libs, java):
        return archive if archive.is_file() else None
    staging = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    work = cache_dir / f".kafka-cds-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    port, controller_port = free_ports(2)
    broker = KafkaServer(
        work,
        port,
        controller_port,
        libs_dir=libs,
        java=java,
        extra_jvm_options=[f"-XX:ArchiveClassesAtExit={staging}"],
        use_class_archive=False,
    )
    try:
        broker.start()
        broker.stop()  # the JVM writes the archive while exiting
        check = subprocess.run(
            # Same class path as the brokers: the archive is only valid for it.
            [
                str(java),
                "-Xshare:on",
                f"-XX:SharedArchiveFile={staging}",
                *("-cp", f"{libs}/*"),
                "-version",
            ],
            capture_output=True,
            check=False,
        )
        if check.returncode != 0 or not staging.is_file():
            # Remember, so that every later session does not spend ~5 s trying again.
            _failed_marker(archive).write_text(check.stderr.decode(errors="replace"))
            return None
        staging.rename(archive)
        return archive
    finally:
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)
        staging.unlink(missing_ok=True)
