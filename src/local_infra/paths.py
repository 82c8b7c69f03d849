"""Where local-infra keeps its servers, caches and state.

Layout under the root (default ``<repo root>/.infra``, override with ``LOCAL_INFRA_HOME``)::

    cache/pg-initdb-<major>/     initdb'd cluster copied for every new Postgres
    cache/kafka-libs-<version>/  Kafka broker jars resolved by Maven
    cache/bytecode/              .pyc files of the service processes tests start
    dev/state.json, dev/<name>/  servers managed by ``local-infra up``/``down``
    test-runs/<pid>-<rand>/      one directory per pytest session (removed at the end)
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV_VAR = "LOCAL_INFRA_HOME"
_PACKAGE_REPO_ROOT = Path(__file__).resolve().parents[2]


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
