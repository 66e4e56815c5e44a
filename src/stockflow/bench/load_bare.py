"""The in-run comparison of ``stockflow load``: a trivial FastAPI endpoint on the same server
stack (uvicorn, one process), driven by the same client as the load (``bench.raw_http``), and
once more by httpx over the kit's transport (aiohttp's pool) and over httpx's own pool: the
figures that justify the hand-written load client and the kit's transport.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec
from prometheus_client import CollectorRegistry

from stockflow.bench.figures import percentile
from stockflow.bench.http_load import Target
from stockflow.bench.http_servers import free_port, running
from stockflow.bench.raw_http import RawHttp
from stockflow_kit.http import PooledTransport, ResilientClient

Get = Callable[[str], Awaitable[Any]]

__all__ = [
    "CLIENTS",
    "BareFigures",
    "ClientFigures",
    "format_clients_table",
    "measure_bare",
    "measure_clients",
]


CLIENTS = ("raw", "resilient", "kit", "httpx")
"""``raw``: ``bench.raw_http`` (the load's own client); ``resilient``: the kit's
``ResilientClient`` (what edge calls the services with: deadline, retries, breaker,
bulkhead, metrics, correlation id, over ``PooledTransport``); ``kit``: httpx's
``AsyncClient`` over the kit's ``PooledTransport`` (aiohttp's pool); ``httpx``: httpx over
its own pool (httpcore), what the kit used before."""


class ClientFigures(msgspec.Struct, kw_only=True):
    client: str
    requests: int
    seconds: float
    req_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    """CPU of this (the client's) process per answered request, user + system."""


class BareFigures(msgspec.Struct, kw_only=True):
    requests: int
    seconds: float
    req_per_s: float
    p50_ms: float
    p99_ms: float
    httpx_req_per_s: float = 0.0
    """The same endpoint through httpx's own pool, same concurrency, right after."""
    kit_req_per_s: float = 0.0
    """The same endpoint through the kit's transport (httpx over aiohttp's pool)."""
    clients: list[ClientFigures] = msgspec.field(default_factory=list)


@contextlib.asynccontextmanager
async def _client(url: str, concurrency: int, client: str) -> AsyncIterator[Get]:
    if client == "raw":
        async with RawHttp(url, max_connections=concurrency) as raw:
            yield raw.get
        return
    if client == "resilient":
        registry = CollectorRegistry()
        async with ResilientClient(
            "bare", url, max_concurrent=concurrency, timeout=10, registry=registry
        ) as resilient:
            yield resilient.get
        return
    transport = PooledTransport(max_connections=concurrency) if client == "kit" else None
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, limits=limits, transport=transport, timeout=10, trust_env=False
    ) as http:
        yield http.get


async def _drive(
    port: int, path: str, *, seconds: float, concurrency: int, client: str
) -> ClientFigures:
    latencies: list[float] = []
    async with _client(f"http://127.0.0.1:{port}", concurrency, client) as get:
        await get(path)  # connect before the clock starts
        cpu = time.process_time()
        started = time.perf_counter()
        until = started + seconds

        async def sender() -> None:
            while (now := time.perf_counter()) < until:
                response = await get(path)
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - now) * 1000.0)

        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    ordered = sorted(latencies)
    return ClientFigures(
        client=client,
        requests=len(ordered),
        seconds=round(elapsed, 2),
        req_per_s=round(len(ordered) / elapsed, 1),
        p50_ms=round(percentile(ordered, 50), 2),
        p99_ms=round(percentile(ordered, 99), 2),
        cpu_us_per_request=round(cpu / len(ordered) * 1e6, 1) if ordered else 0.0,
    )


def measure_clients(
    *, seconds: float = 5.0, concurrency: int = 32, clients: Sequence[str] = CLIENTS
) -> list[ClientFigures]:
    """Start the bare app once and drive it with each client in turn, the same way."""
    target = Target(port=free_port(), path="/inventory/SKU-1")
    argv = [sys.executable, "-m", "stockflow.bench.http_apps", "bare", "--port", str(target.port)]
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stockflow-load-")))
        stack.enter_context(running(argv, workdir / "bare", {}, target))
        return [
            asyncio.run(
                _drive(
                    target.port, target.path, seconds=seconds, concurrency=concurrency, client=name
                )
            )
            for name in clients
        ]


def measure_bare(*, seconds: float = 5.0, concurrency: int = 32) -> BareFigures:
    """The bare endpoint through the load's client, then through the kit's and httpx's."""
    figures = {f.client: f for f in measure_clients(seconds=seconds, concurrency=concurrency)}
    raw = figures["raw"]
    return BareFigures(
        requests=raw.requests,
        seconds=raw.seconds,
        req_per_s=raw.req_per_s,
        p50_ms=raw.p50_ms,
        p99_ms=raw.p99_ms,
        httpx_req_per_s=figures["httpx"].req_per_s,
        kit_req_per_s=figures["kit"].req_per_s,
        clients=list(figures.values()),
    )


def format_clients_table(rows: Sequence[ClientFigures]) -> str:
    """The clients side by side, with each one's rate as a ratio of httpx's own pool."""
    base = next((r.req_per_s for r in rows if r.client == "httpx"), 0.0)
    lines = [
        f"{'client':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} {'vs httpx':>9}"
    ]
    for row in rows:
        ratio = f"{row.req_per_s / base:.2f}x" if base else "-"
        lines.append(
            f"{row.client:<8} {row.req_per_s:>9,.0f} {row.p50_ms:>8g} {row.p99_ms:>8g}"
            f" {row.cpu_us_per_request:>11,.0f} {ratio:>9}"
        )
    return "\n".join(lines)
