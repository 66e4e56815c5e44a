"""``stockflow bench http --in-process``: the baseline apps' CPU per request, without a server.

Each application of :data:`stockflow.bench.http_apps.APPS` is called directly as an ASGI
app (``GET /inventory/SKU-1`` with a Host header and no body) in a fresh interpreter
of its own (``configure_logging`` is process-wide), with its standard error (the access log)
in a file. What is measured is the process's CPU time per request (``time.process_time``),
the best of a few rounds after a warm-up: no sockets, no uvicorn, no load generator sharing
the cores (busy neighbours still stretch CPU time: compare runs alternated with each other).
It measures only the application's share of a request (the framework, the kit's
middleware, the access line), which is what the kit can change; the server's share (about
half of bare's CPU per request under uvicorn) is not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Final

import msgspec
from starlette.types import ASGIApp, Message, Scope

__all__ = ["InProcessRow", "format_in_process_table", "main", "measure_in_process"]

_PATH: Final = "/inventory/SKU-1"


class InProcessRow(msgspec.Struct, frozen=True, kw_only=True):
    """One application: its CPU microseconds per request, and bare's over it."""

    name: str
    cpu_us_per_request: float
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


async def _cpu_us_per_request(app: ASGIApp, requests: int, rounds: int) -> float:
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
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            await app(_scope(), _receive, _send)
        best = min(best, (time.process_time() - started) / requests * 1e6)
    return best


def measure_in_process(
    names: Sequence[str], *, requests: int = 5000, rounds: int = 5
) -> list[InProcessRow]:
    """Each app of *names* in its own interpreter, in order; the first is the denominator."""
    measured: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="stockflow-bench-inprocess-") as tmp:
        for name in names:
            with open(os.path.join(tmp, f"{name}.log"), "wb") as log:
                done = subprocess.run(
                    [sys.executable, "-m", __name__, name, str(requests), str(rounds)],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    check=True,
                )
            measured.append((name, float(done.stdout)))
    base = measured[0][1]
    return [InProcessRow(name=n, cpu_us_per_request=us, cpu_ratio=base / us) for n, us in measured]


def format_in_process_table(rows: Sequence[InProcessRow]) -> str:
    lines = [f"{'app':<12} {'cpu us':>7} {'cpu x':>6}", "-" * 27]
    lines += [f"{r.name:<12} {r.cpu_us_per_request:>7.1f} {r.cpu_ratio:>5.2f}x" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Measure one app and print its CPU microseconds per request (the child's side)."""
    from stockflow.bench.http_apps import APPS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("requests", type=int)
    parser.add_argument("rounds", type=int)
    args = parser.parse_args(argv)
    app = APPS[args.app]()
    print(f"{asyncio.run(_cpu_us_per_request(app, args.requests, args.rounds)):.3f}")


if __name__ == "__main__":
    main()
