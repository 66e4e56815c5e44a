"""The server processes of ``stockflow bench http``: start, wait until ready, stop, CPU time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from stockflow.bench.http_load import Target, fresh_values
from stockflow_kit.lifecycle import ServiceProcess, free_port

__all__ = [
    "cpu_seconds",
    "credential_env",
    "exchange",
    "free_port",
    "free_port_range",
    "request",
    "running",
    "stockflow_command",
]


def credential_env() -> dict[str, str]:
    """The service credential a benchmarked ``stockflow serve`` needs to start (and its
    routes need from a caller): the one of the environment, else a random one."""
    token = os.environ.get("STOCKFLOW_SERVICE_TOKEN") or secrets.token_urlsafe(16)
    return {"STOCKFLOW_SERVICE_TOKEN": token}


def credential_headers(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ``Authorization`` header presenting the credential of *env* (:func:`credential_env`)."""
    return (("Authorization", f"Bearer {env['STOCKFLOW_SERVICE_TOKEN']}"),)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process *pid* and its descendants (granian's workers).

    Read from ``/proc``; ``None`` where there is none.
    """
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, CPU seconds)
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        entries = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rpartition(")")[2].split()  # the command name may contain spaces
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    if pid not in stats:
        return None
    family, total = {pid}, 0.0
    for candidate in sorted(stats):  # children have higher pids, except after wrap-around
        parent, cpu = stats[candidate]
        if candidate in family or parent in family:
            family.add(candidate)
            total += cpu
    return total


def stockflow_command() -> list[str]:
    script = Path(sys.executable).with_name("stockflow")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from stockflow.runtime.cli import main; main()"]


def request(target: Target, timeout: float = 5.0) -> int:
    """Send *target*'s request once; its status."""
    return exchange(target, timeout)[0]


def exchange(target: Target, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send *target*'s request once (a new value for each ``FRESH``); its status and body."""
    target = target.with_fresh(next(fresh_values()))
    request = urllib.request.Request(target.url, data=target.body, method=target.method)
    if target.body is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in target.headers:
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def free_port_range(count: int) -> int:
    """A port *p* such that *p* … *p* + *count* - 1 are free now (for ``--port-base``)."""
    for _ in range(50):
        base = free_port()
        if base + count > 65_535:
            continue
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports found")


@contextmanager
def running(
    argv: Sequence[str], workdir: Path, env: Mapping[str, str], target: Target
) -> Iterator[int]:
    """Run *argv* (its output to ``<workdir>.log``) once ``GET /readyz`` answers 200; its pid.

    A service gets a random credential unless one is set (``stockflow serve`` needs one).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    process = ServiceProcess(
        argv,
        name=Path(argv[0]).name,
        env={**credential_env(), **env},
        port=target.port,
        log=workdir.with_suffix(".log"),
    )
    process.start()
    try:
        asyncio.run(process.wait_ready(within=60))
        assert process.pid is not None
        yield process.pid
    finally:
        process.terminate(grace=20)
