"""Test tools the API-document tests need besides the servers.

* ``chromium``: Debian's headless browser (apt, when root), which renders ``/docs`` and
  ``/asyncapi`` with the network closed.
* ``asyncapi-specs``: the AsyncAPI JSON Schemas of the npm package ``@asyncapi/specs``, installed
  with ``npm ci`` from ``infra/npm`` (version and integrity pinned by its package-lock.json) into
  ``<root>/cache/npm-<lock hash>/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Literal

from local_infra.install import InstallError, Log, apt_install, run, stderr_log
from local_infra.paths import npm_project_dir

ToolName = Literal["chromium", "asyncapi-specs"]
TOOL_NAMES: tuple[ToolName, ...] = ("chromium", "asyncapi-specs")

CHROMIUM = Path("/usr/bin/chromium")
_COMPLETE = ".complete"


def ensure_chromium(log: Log = stderr_log) -> Path:
    if not CHROMIUM.is_file():
        apt_install(["chromium"], "chromium (the headless browser of the API-document tests)", log)
    if not CHROMIUM.is_file():
        raise InstallError(f"{CHROMIUM} still missing after installing chromium")
    return CHROMIUM


def ensure_asyncapi_specs(cache_dir: Path, log: Log = stderr_log) -> Path:
    """The ``schemas`` directory of ``@asyncapi/specs`` (``3.0.0.json``, ...)."""
    project = npm_project_dir()
    lock = (project / "package-lock.json").read_bytes()
    target = cache_dir / f"npm-{hashlib.sha256(lock).hexdigest()[:16]}"
    schemas = target / "node_modules" / "@asyncapi" / "specs" / "schemas"
    if (target / _COMPLETE).is_file():
        return schemas
    npm = shutil.which("npm")
    if npm is None:
        apt_install(["npm"], "npm (installs the AsyncAPI JSON Schemas)", log)
        npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm still missing after installing it")
    # Installed into a private directory and renamed when complete, so an interrupted install
    # is never mistaken for a good one.
    staging = cache_dir / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(project / name, staging / name)
    log(f"local-infra: npm ci (the AsyncAPI JSON Schemas) into {target}")
    run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", str(staging)],
        "npm ci",
    )
    (staging / _COMPLETE).write_text("")
    try:
        staging.rename(target)
    except OSError:  # a concurrent process got there first
        shutil.rmtree(staging, ignore_errors=True)
    return schemas


def ensure_tools(names: list[str], cache_dir: Path, log: Log = stderr_log) -> None:
    if "chromium" in names:
        ensure_chromium(log)
    if "asyncapi-specs" in names:
        ensure_asyncapi_specs(cache_dir, log)
