"""Loopback port helpers."""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
# Fallback when /proc is unavailable: the Linux default ephemeral range.
_DEFAULT_EPHEMERAL = (32768, 60999)
_LOW_PORT = 20000


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if a server could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so a port in TIME_WAIT after a restart counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports that are currently free on ``host``.

    Ports are picked at random *below* the kernel's ephemeral range when possible. A port from
    the ephemeral range (what binding to port 0 returns) can later be taken as the source port
    of some outgoing connection, and a client that keeps reconnecting to a stopped server's
    port can even connect to itself (TCP simultaneous open) - both would break tests that stop
    a server and start it again on the same port. Falls back to binding port 0.
    """
    low = _LOW_PORT
    high = min(_ephemeral_range()[0], 65536) - 1
    chosen: list[int] = []
    attempts = 0
    while len(chosen) < count and high > low and attempts < 200:
        attempts += 1
        port = random.randint(low, high)
        if port not in chosen and port_is_free(port, host):
            chosen.append(port)
    with contextlib.ExitStack() as stack:
        while len(chosen) < count:
            # Keep each socket bound until all are chosen so the kernel hands out distinct ports.
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            chosen.append(int(sock.getsockname()[1]))
    return chosen


def free_port(host: str = LOOPBACK) -> int:
    """One currently free port on ``host`` (see :func:`free_ports`)."""
    return free_ports(1, host)[0]


def can_connect(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
