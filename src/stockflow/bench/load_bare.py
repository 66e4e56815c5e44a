"""The in-run comparison of ``stockflow load``: a trivial FastAPI endpoint on the same server
stack (uvicorn, one process), driven by the same client as the load (``bench.raw_http``), and
once more by httpx: the figure that justifies the hand-written client.

``bench.http_apps``' ``bare`` app answers ``GET /inventory/{sku}`` with a constant stock JSON;
*concurrency* closed-loop senders keep it busy for *seconds*. Its req/s is what one hop of
the framework and the client cost on this machine in this run, so edge's accepted orders/s
can be read as a ratio of it (an order crosses edge, orders and, asynchronously, inventory).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec

from stockflow.bench.figures import percentile
from stockflow.bench.http_load import Target
from stockflow.bench.http_servers import free_port, running
from stockflow.bench.raw_http import RawHttp

__all__ = ["BareFigures", "measure_bare"]


class BareFigures(msgspec.Struct, kw_only=True):
    requests: int
    seconds: float
    req_per_s: float
    p50_ms: float
    p99_ms: float
    httpx_req_per_s: float = 0.0
    """The same endpoint through httpx, same concurrency, right after."""


async def _drive(
    port: int, path: str, *, seconds: float, concurrency: int, client: str
) -> BareFigures:
    latencies: list[float] = []
    url = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=concurrency)
    async with (
        RawHttp(url, max_connections=concurrency) as raw,
        httpx.AsyncClient(base_url=url, limits=limits, timeout=10, trust_env=False) as http,
    ):
        get = raw.get if client == "raw" else http.get
        started = time.perf_counter()
        until = started + seconds

        async def sender() -> None:
            while (now := time.perf_counter()) < until:
                response = await get(path)
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - now) * 1000.0)

        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return BareFigures(
        requests=len(ordered),
        seconds=round(elapsed, 2),
        req_per_s=round(len(ordered) / elapsed, 1),
        p50_ms=round(percentile(ordered, 50), 2),
        p99_ms=round(percentile(ordered, 99), 2),
    )


def measure_bare(*, seconds: float = 5.0, concurrency: int = 32) -> BareFigures:
    """Start the bare app, drive it, stop it."""
    target = Target(port=free_port(), path="/inventory/SKU-1")
    argv = [sys.executable, "-m", "stockflow.bench.http_apps", "bare", "--port", str(target.port)]
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stockflow-load-")))
        stack.enter_context(running(argv, workdir / "bare", {}, target))
        raw = asyncio.run(
            _drive(target.port, target.path, seconds=seconds, concurrency=concurrency, client="raw")
        )
        through_httpx = asyncio.run(
            _drive(
                target.port, target.path, seconds=seconds, concurrency=concurrency, client="httpx"
            )
        )
    raw.httpx_req_per_s = through_httpx.req_per_s
    return raw
