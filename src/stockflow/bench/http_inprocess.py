"""``stockflow bench http --in-process``: the baseline apps' CPU per request, without a server.

Each application of :data:`stockflow.bench.http_apps.APPS` is called directly as an ASGI
app (``GET /inventory/SKU-1`` with a Host header and no body) in a child interpreter of its
own (``configure_logging`` is process-wide), with its standard error (the access log) in a
file. What is measured is the child's CPU time per request (``time.process_time``) over a
round of requests; the children run their rounds in turn (round 1 of every app, then round 2,
...), so a busy moment of the machine falls on every app alike, and each app keeps its best
round (the median is reported too). No sockets, no uvicorn, no load generator sharing the
cores. It measures only the application's share of a request (the framework, the kit's
middleware, the access line), which is what the kit can change; the server's share (about
half of bare's CPU per request under uvicorn) is not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import IO, Final

import msgspec
from starlette.types import ASGIApp, Message, Scope

__all__ = ["InProcessRow", "format_in_process_table", "main", "measure_in_process"]

_PATH: Final = "/inventory/SKU-1"


class InProcessRow(msgspec.Struct, frozen=True, kw_only=True):
    """One application: its CPU microseconds per request (best and median round), and bare's
    best over its best."""

    name: str
    cpu_us_per_request: float
    median_cpu_us_per_request: float
    cpu_ratio: float


def _scope() -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": _PATH,
        "raw_path": _PATH.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "state": {},
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_message: Message) -> None:
    return None


async def _check_and_warm(app: ASGIApp, requests: int) -> None:
    statuses: list[int] = []

    async def first_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(_scope(), _receive, first_send)
    if statuses != [200]:
        msg = f"GET {_PATH} answered {statuses}, not 200"
        raise RuntimeError(msg)
    for _ in range(min(requests, 500)):
        await app(_scope(), _receive, _send)


async def _round(app: ASGIApp, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        await app(_scope(), _receive, _send)
    return (time.process_time() - started) / requests * 1e6


class _Child:
    """One app's interpreter: ``ready`` once warmed up, then one round per ``go`` line."""

    def __init__(self, name: str, requests: int, log: IO[bytes]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", __name__, name, str(requests)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.rounds: list[float] = []

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            msg = f"the {self.name} child exited (code {self.process.wait()}); see its log"
            raise RuntimeError(msg)
        return line.strip()

    def wait_ready(self) -> None:
        if (line := self._line()) != "ready":
            msg = f"the {self.name} child said {line!r}, not ready"
            raise RuntimeError(msg)

    def run_round(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        self.rounds.append(float(self._line()))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def measure_in_process(
    names: Sequence[str], *, requests: int = 1000, rounds: int = 30
) -> list[InProcessRow]:
    """Each app of *names* in a child of its own, rounds in turn; the first is the denominator."""
    with tempfile.TemporaryDirectory(prefix="stockflow-bench-inprocess-") as tmp:
        logs = [open(os.path.join(tmp, f"{name}.log"), "wb") for name in names]  # noqa: SIM115
        children = [_Child(name, requests, log) for name, log in zip(names, logs, strict=True)]
        try:
            for child in children:
                child.wait_ready()
            for _ in range(rounds):
                for child in children:
                    child.run_round()
        finally:
            for child in children:
                child.close()
            for log in logs:
                log.close()
    base = min(children[0].rounds)
    return [
        InProcessRow(
            name=c.name,
            cpu_us_per_request=min(c.rounds),
            median_cpu_us_per_request=statistics.median(c.rounds),
            cpu_ratio=base / min(c.rounds),
        )
        for c in children
    ]


def format_in_process_table(rows: Sequence[InProcessRow]) -> str:
    lines = [f"{'app':<12} {'cpu us':>7} {'median':>7} {'cpu x':>6}", "-" * 35]
    lines += [
        f"{r.name:<12} {r.cpu_us_per_request:>7.1f} {r.median_cpu_us_per_request:>7.1f}"
        f" {r.cpu_ratio:>5.2f}x"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """The child's side: warm one app up, say ``ready``, then time a round per ``go`` line."""
    from stockflow.bench.http_apps import APPS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("requests", type=int)
    args = parser.parse_args(argv)
    app = APPS[args.app]()

    async def serve() -> None:
        await _check_and_warm(app, args.requests)
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() == "go":
                print(f"{await _round(app, args.requests):.3f}", flush=True)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
