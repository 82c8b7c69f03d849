"""Where the data directories of new PostgreSQL clusters come from.

``initdb`` takes ~0.6 s, so it runs once per major version into a cached template,
``<root>/cache/pg-initdb-<major>``, and every new cluster is a copy of it. Copying ~1000 small
files can itself be slow (0.6-0.9 s on some filesystems, e.g. under /work in CI sandboxes), so a
copy is also prepared in the background after each use: ready-made "spare" clusters in
``<scratch>/cache/pg-spare-<major>/`` that the next server takes with a single rename (on the
filesystem of the test runs, ``paths.scratch_root``; a server elsewhere gets a copy).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import time
from functools import cache
from pathlib import Path

from local_infra.paths import scratch_root
from local_infra.process import ServerStartError

USER = "cms"  # superuser created by initdb; trust auth, so no password
# The server refuses to run as root; when we are root it runs as the Debian system user.
SYSTEM_USER = "postgres"
_SPARES = 2  # enough for a couple of concurrent sessions
_STALE_SPARE_SECONDS = 600.0  # an unfinished background copy this old was interrupted


def server_user() -> str | None:
    """User the server must run as: ``postgres`` when we are root, else ourselves (None)."""
    return SYSTEM_USER if os.geteuid() == 0 else None


def find_bin_dir() -> Path | None:
    """Directory with the server binaries: highest /usr/lib/postgresql/<v>/bin, else PATH."""
    candidates: list[tuple[float, Path]] = []
    for bin_dir in Path("/usr/lib/postgresql").glob("*/bin"):
        version = bin_dir.parent.name
        if (bin_dir / "postgres").is_file() and re.fullmatch(r"\d+(\.\d+)?", version):
            candidates.append((float(version), bin_dir))
    if candidates:
        return max(candidates)[1]
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).parent / "postgres").is_file():
        return Path(on_path).parent
    return None


@cache
def major_version(bin_dir: Path) -> str:
    """'15' for 'postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'."""
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    if match is None:
        raise ServerStartError(f"cannot parse PostgreSQL version from {out!r}")
    return match.group(1)


def check_reachable_by(user: str, path: Path) -> None:
    """The server runs as ``user``: every directory above its data dir must let it pass."""
    entry = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, entry.pw_gid))
    for directory in [p for p in (path, *path.parents) if p.exists()]:
        info = directory.stat()
        if info.st_uid == entry.pw_uid:
            allowed = bool(info.st_mode & stat.S_IXUSR)
        elif info.st_gid in groups:
            allowed = bool(info.st_mode & stat.S_IXGRP)
        else:
            allowed = bool(info.st_mode & stat.S_IXOTH)
        if not allowed:
            raise ServerStartError(
                f"PostgreSQL runs as the '{user}' user (it refuses to run as root), which cannot "
                f"enter {directory}. Point LOCAL_INFRA_HOME at a directory it can reach, "
                "e.g. /var/tmp/local-infra."
            )


def clean_env() -> dict[str, str]:
    # PG* variables (PGOPTIONS, PGSSLMODE, ...) of the caller must not leak into our tools.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _identity(user: str | None) -> tuple[int | None, int | None, list[int] | None]:
    """uid, gid and (no) supplementary groups for subprocess, or Nones to stay ourselves."""
    if user is None:
        return None, None, None
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid, []


def _empty_dir_for(user: str | None, path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def ensure_template(cache_dir: Path, bin_dir: Path) -> Path:
    """An initdb'd data directory to copy new clusters from; created once per major version."""
    template = cache_dir / f"pg-initdb-{major_version(bin_dir)}"
    if (template / "PG_VERSION").is_file():
        _own_cached_clusters(template)
        return template
    cache_dir.mkdir(parents=True, exist_ok=True)
    user = server_user()
    if user is not None:
        check_reachable_by(user, cache_dir)
    # Build under a private name and rename: a half-built template is never visible.
    staging = cache_dir / f".{template.name}.{os.getpid()}.tmp"
    base = [str(bin_dir / "initdb"), "-D", str(staging), "-U", USER, "--auth=trust", "-E", "UTF8"]
    uid, gid, groups = _identity(user)
    output = ""
    # C.UTF-8 keeps byte-order collation but knows the case of non-ASCII letters (Å/å);
    # not every system has that locale, so fall back to plain C.
    for locale in ("C.UTF-8", "C"):
        _empty_dir_for(user, staging)
        result = subprocess.run(
            # 1 MB WAL segments instead of 16 MB: the template (copied for every new cluster)
            # shrinks from 39 to 24 MB, which is most of the cost of creating a cluster.
            [*base, f"--locale={locale}", "--wal-segsize=1", "--no-sync", "--no-instructions"],
            capture_output=True,
            text=True,
            cwd=cache_dir,
            env=clean_env(),
            user=uid,
            group=gid,
            extra_groups=groups,
            check=False,
        )
        if result.returncode == 0:
            try:
                staging.rename(template)
            except OSError:  # another process finished first; theirs is as good as ours
                shutil.rmtree(staging, ignore_errors=True)
            return template
        output += result.stdout + result.stderr
    shutil.rmtree(staging, ignore_errors=True)
    raise ServerStartError(f"initdb failed:\n{output[-4000:]}")


def _own_cached_clusters(template: Path) -> None:
    """Give the template and its spares back to the server user if a copy without ``-a``
    (e.g. a cache copied into a new checkout by root) left them owned by someone else: the
    server refuses to read a data directory it does not own."""
    user = server_user()
    if user is None or template.stat().st_uid == pwd.getpwnam(user).pw_uid:
        return
    spares = _spares_dir(template)
    targets = [template, *(spares.iterdir() if spares.is_dir() else ())]
    subprocess.run(["chown", "-R", f"{user}:{user}", *map(str, targets)], check=True)


def _spares_dir(template: Path) -> Path:
    # The template is <root>/cache/pg-initdb-<major>.
    cache = scratch_root(template.parent.parent) / template.parent.name
    return cache / template.name.replace("pg-initdb-", "pg-spare-")


def _take_spare(spares: Path, target: Path) -> bool:
    """Move a ready spare cluster to ``target``; False if there is none."""
    try:
        ready = sorted(e for e in spares.iterdir() if not e.name.startswith("."))
    except FileNotFoundError:
        return False
    for spare in ready:
        try:
            spare.rename(target)
        except OSError:  # taken by a concurrent session, or another filesystem: try the next
            continue
        return True
    return False


def _replenish_spares(template: Path, spares: Path) -> None:
    """Start detached background copies of the template until _SPARES are ready or on the way.

    In-progress copies are named ``.<unix time>-<random>`` and renamed when complete, so a
    half-copied cluster is never taken; ones left behind by an interrupted copy are removed.
    """
    spares.mkdir(parents=True, exist_ok=True)
    pending = 0
    for entry in spares.iterdir():
        if not entry.name.startswith("."):
            pending += 1
            continue
        started = entry.name[1:].split("-")[0]
        if started.isdigit() and time.time() - int(started) > _STALE_SPARE_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)
        else:
            pending += 1
    script = '(cp -a "$1" "$2" && mv "$2" "$3") >/dev/null 2>&1 &'
    for _ in range(_SPARES - pending):
        name = secrets.token_hex(4)
        staging = spares / f".{int(time.time())}-{name}"
        # `sh` exits at once and the copy is orphaned to init, so nobody has to reap it and a
        # test session that ends meanwhile neither waits for it nor kills it.
        subprocess.run(
            ["sh", "-c", script, "sh", str(template), str(staging), str(spares / name)],
            check=True,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )


def create_data_dir(cache_dir: Path, bin_dir: Path, target: Path) -> None:
    """Create a fresh, never-started cluster at ``target`` (which must not exist)."""
    template = ensure_template(cache_dir, bin_dir)
    spares = _spares_dir(template)
    if not _take_spare(spares, target):
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        # `cp -a` keeps the owner (the postgres user when we are root) and the 0700 mode that
        # the server insists on; shutil.copytree would leave root-owned files.
        subprocess.run(["cp", "-a", str(template), str(staging)], check=True)
        staging.rename(target)
    _replenish_spares(template, spares)
