"""Where local-infra keeps its servers, caches and state.

Layout under the root (default ``<repo root>/.infra``, override with ``LOCAL_INFRA_HOME``)::

    cache/pg-initdb-<major>/     initdb'd cluster copied for every new Postgres
    cache/kafka-libs-<version>/  Kafka broker jars resolved by Maven
    cache/bytecode/              .pyc files of the service processes tests start
    dev/state.json, dev/<name>/  servers managed by ``local-infra up``/``down``
    test-runs/<pid>-<rand>/      one directory per pytest session (removed at the end)

The throwaway parts (test runs, spare PostgreSQL clusters) live under ``scratch_root(root)``: the
same layout in a directory of its own in shared memory, where there is one, which names its root
in an ``owner`` file so that the scratch of a root deleted since (a removed checkout, a CI clone)
is freed by the next session of any other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

HOME_ENV_VAR = "LOCAL_INFRA_HOME"
_PACKAGE_REPO_ROOT = Path(__file__).resolve().parents[2]
_SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 - the directory is checked to be ours
_SCRATCH_MIN_FREE_BYTES = 4 << 30
_SCRATCH_PREFIX = "local-infra-"
_OWNER_FILE = "owner"


def find_repo_root(start: Path | None = None) -> Path | None:
    """Nearest directory at or above ``start`` (default: cwd) that holds a pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return None


def infra_root() -> Path:
    """Root directory for all local-infra data; created (with a catch-all .gitignore)."""
    configured = os.environ.get(HOME_ENV_VAR)
    if configured:
        root = Path(configured).expanduser().resolve()
    else:
        repo = find_repo_root()
        if repo is None and (_PACKAGE_REPO_ROOT / "pyproject.toml").is_file():
            # Running from outside the checkout (e.g. `local-infra status` in $HOME) while the
            # package is installed editable: still use the checkout the code lives in.
            repo = _PACKAGE_REPO_ROOT
        root = (repo / ".infra") if repo else Path.home() / ".cache" / "local-infra"
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        # Keeps databases, logs and jars out of git without touching the repo's own .gitignore.
        ignore.write_text("*\n")
    return root


def bytecode_cache() -> Path:
    """Where the test session and the service processes it starts keep their ``.pyc`` files
    (``PYTHONPYCACHEPREFIX``): out of the work tree, and kept across runs."""
    return infra_root() / "cache" / "bytecode"


def scratch_root(root: Path) -> Path:
    """Where the throwaway data of ``root`` goes: ``/dev/shm/local-infra-<digest of root>`` if
    that filesystem exists with 4 GiB free and ``root`` is not on it already, else ``root``.

    A test session creates and deletes thousands of small files (a PostgreSQL cluster is ~1000,
    each database ~300). On an ext4 without a journal every new inode skips, one block read each,
    all those deleted in the last minutes, so with a few sessions a minute that was ~40 % of a
    PostgreSQL-only test file's CPU; in memory creating a file is cheap. None of it has to
    survive a reboot, and it is small next to the machine's memory.
    """
    try:
        shared = _SHARED_MEMORY.stat()
    except OSError:
        return root
    if not os.access(_SHARED_MEMORY, os.W_OK) or root.stat().st_dev == shared.st_dev:
        return root
    # A container's /dev/shm is often 64 MiB: a run (clusters, a million-row table, broker logs)
    # would fill it and fail, so it is used only with room to spare.
    free = os.statvfs(_SHARED_MEMORY)
    if free.f_bavail * free.f_frsize < _SCRATCH_MIN_FREE_BYTES:
        return root
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    scratch = _SHARED_MEMORY / f"{_SCRATCH_PREFIX}{digest}"
    scratch.mkdir(mode=0o755, exist_ok=True)
    # The name is predictable in a directory everyone can write to: use it only if it is a
    # real directory of ours that nobody else can write to (else nothing is gained, not lost).
    if not _ours(scratch) or scratch.lstat().st_mode & 0o022:
        return root
    owner = scratch / _OWNER_FILE
    if not owner.is_file() or owner.read_text() != str(root):
        owner.write_text(str(root))
    _free_abandoned_scratch()
    return scratch


def _ours(path: Path) -> bool:
    info = path.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()


def _free_abandoned_scratch() -> None:
    """Remove our scratch directories whose root no longer exists: it is the machine's memory,
    and nothing else frees it before a reboot. One without an owner file yet (being created) is
    left alone."""
    for scratch in _SHARED_MEMORY.glob(f"{_SCRATCH_PREFIX}*"):
        try:
            if not _ours(scratch):
                continue
            root = Path((scratch / _OWNER_FILE).read_text())
        except OSError:
            continue
        if not root.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def kafka_pom_path() -> Path:
    """The Maven project (infra/kafka/pom.xml) that lists the Kafka broker's jars."""
    candidates = [
        root / "infra" / "kafka" / "pom.xml"
        for root in (find_repo_root(), _PACKAGE_REPO_ROOT)
        if root is not None
    ]
    for pom in candidates:
        if pom.is_file():
            return pom
    searched = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"infra/kafka/pom.xml not found (looked at: {searched})")


def npm_project_dir() -> Path:
    """The npm project (infra/npm: package.json and package-lock.json) of the test tools."""
    return kafka_pom_path().parent.parent / "npm"
