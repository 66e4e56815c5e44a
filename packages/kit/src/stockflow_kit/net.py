"""Picking free local TCP ports that stay free: for tests, benchmarks and local brokers."""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port", "free_port_block"]

_RESERVED_PORTS = frozenset({4222, 5432, 5672, 6379, 8222, 9092, 15672})
_ports = random.Random()  # private: tests that seed the global ``random`` do not repeat picks


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for ports it hands out itself (outgoing connections, port 0)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


def free_port_block(count: int = 1, host: str = "127.0.0.1") -> int:
    """Return the first of *count* consecutive TCP ports on *host* that were all free just now.

    The ports are picked at random **outside** the kernel's ephemeral range: a port the kernel
    chose for ``bind(0)`` is one it may give next to an outgoing connection (to PostgreSQL, a
    broker), and a service started a few seconds later would find it taken. Outside that range
    only another explicit picker can collide, and random picks make that rare.
    """
    low, high = _ephemeral_range()
    spans = [(a, b) for a, b in ((10_000, low - 1), (high + 1, 65_000)) if b - a > 2 * count]
    if not spans:
        spans = [(1_024, 65_000)]
    for _ in range(500):
        # Every free port equally likely (a span picked by its size, not half the time each):
        # the fewer the ports picks share, the rarer two pickers collide.
        (
            start,
            end,
        ) = _ports.choices(spans, weights=[b - a for a, b in spans])[0]
        base = _ports.randrange(start, end - count)
        ports = range(base, base + count)
        if _RESERVED_PORTS.intersection(ports):
            continue
        try:
            for port in ports:
                with socket.socket() as sock:
                    sock.bind((host, port))
        except OSError:
            continue
        return base
    raise OSError(f"no {count} consecutive free ports on {host}")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on *host* that was free a moment ago (see :func:`free_port_block`).

    Another process may take it before it is used; that is rare, and the service then fails to
    bind, which :meth:`ServiceProcess.wait_ready` reports.
    """
    return free_port_block(1, host)
