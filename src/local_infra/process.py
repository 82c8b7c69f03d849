"""Run one server process in the background and keep track of it through a pid file.

The pid file stores the pid *and* the kernel start time of the process, so a recycled pid is
never mistaken for our server (and never signalled). Processes are started in their own session
(process group), which keeps a Ctrl-C in the parent's terminal from reaching them and lets
``kill()`` take out helper processes (e.g. Postgres backends) together with the leader.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_LINES = 40


class ServerStartError(RuntimeError):
    """A server could not be installed, started or did not become ready in time."""


@dataclass(frozen=True)
class _PidRecord:
    pid: int
    start_ticks: int | None  # field 22 of /proc/<pid>/stat; None where /proc is unavailable


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of ``pid``, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _has_proc() -> bool:
    return Path("/proc/self/stat").exists()


def _alive(record: _PidRecord) -> bool:
    if _has_proc():
        stat = _proc_stat(record.pid)
        if stat is None:
            return False
        state, start_ticks = stat
        # A zombie has exited; nobody may reap it if our parent is a minimal container init.
        return state != "Z" and (record.start_ticks is None or start_ticks == record.start_ticks)
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ManagedProcess:
    """A background process whose output goes to ``<directory>/server.log``."""

    def __init__(self, directory: Path, label: str) -> None:
        self.directory = directory
        self.label = label
        self.log_path = directory / "server.log"
        self.pid_path = directory / "server.pid"
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # -- starting -------------------------------------------------------------------------
    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> int:
        """Start ``argv`` detached from our terminal; returns its pid."""
        self.directory.mkdir(parents=True, exist_ok=True)
        uid: int | None = None
        gid: int | None = None
        groups: list[int] | None = None
        if user is not None:
            entry = pwd.getpwnam(user)
            # Drop root's supplementary groups too, not just uid/gid.
            uid, gid, groups = entry.pw_uid, entry.pw_gid, []
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"=== local-infra {stamp}: {shlex.join(argv)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self._popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        pid = self._popen.pid
        stat = _proc_stat(pid) if _has_proc() else None
        start_ticks = "-" if stat is None else str(stat[1])
        self.pid_path.write_text(f"{pid} {start_ticks}\n")
        return pid

    def wait_until_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Poll ``probe`` until it returns True; raise if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            if not self.is_running():
                code = self._popen.poll() if self._popen is not None else None
                status = "" if code is None else f" with exit code {code}"
                raise ServerStartError(
                    f"{self.label} exited during startup{status}. {self.describe_log()}"
                )
            if probe():
                return
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"{self.label} was not ready after {timeout:.0f} s. {self.describe_log()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- inspecting -----------------------------------------------------------------------
    def _record(self) -> _PidRecord | None:
        try:
            pid_text, ticks_text = self.pid_path.read_text().split()
            start_ticks = None if ticks_text == "-" else int(ticks_text)
            return _PidRecord(int(pid_text), start_ticks)
        except (FileNotFoundError, ValueError):
            return None

    def _live_record(self) -> _PidRecord | None:
        record = self._record()
        if record is None:
            return None
        if self._popen is not None and self._popen.pid == record.pid:
            self._popen.poll()  # reap our own child so it does not linger as a zombie
        return record if _alive(record) else None

    @property
    def pid(self) -> int | None:
        """Pid of the running process, or None."""
        record = self._live_record()
        return None if record is None else record.pid

    def is_running(self) -> bool:
        return self._live_record() is not None

    def log_since_spawn(self) -> str:
        """Output written by the process since the last :meth:`spawn` of this object."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 256 * 1024))
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe_log(self) -> str:
        return f"Last lines of {self.log_path}:\n{self.log_tail()}"

    # -- stopping -------------------------------------------------------------------------
    def _wait_gone(self, record: _PidRecord, timeout: float) -> bool:
        if self._popen is not None and self._popen.pid == record.pid:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while _alive(record):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _kill_group(self, record: _PidRecord) -> None:
        with contextlib.suppress(ProcessLookupError):
            # Only signal the group if it really is the server's own (start_new_session=True).
            if os.getpgid(record.pid) == record.pid:
                os.killpg(record.pid, signal.SIGKILL)
            else:
                os.kill(record.pid, signal.SIGKILL)

    def _forget(self) -> None:
        self.pid_path.unlink(missing_ok=True)
        self._popen = None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Send ``sig``; SIGKILL the process group if it has not exited after ``timeout``."""
        record = self._live_record()
        if record is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, sig)
            if not self._wait_gone(record, timeout):
                self._kill_group(record)
                self._wait_gone(record, 10.0)
        self._forget()

    def kill(self) -> None:
        """SIGKILL the whole process group at once (simulates a crash)."""
        record = self._live_record()
        if record is not None:
            self._kill_group(record)
            self._wait_gone(record, 10.0)
        self._forget()
