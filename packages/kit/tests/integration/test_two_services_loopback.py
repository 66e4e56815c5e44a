"""Two kit-instrumented FastAPI services on real loopback ports, the front calling the back.

Not marked ``integration``: it needs no server but the two it starts, with uvicorn, on free
ports of 127.0.0.1 in this test's event loop. It follows one request across both services
(correlation id, trace, log lines), then breaks the back and watches the front's circuit
breaker open, fail fast, half-open and close again, as its ``/metrics`` tells it.

The breaker runs on a ManualClock, so "after the reset timeout" needs no sleeping.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from stockflow_kit.http import ErrorTable, instrument
from stockflow_kit.http.client import (
    DownstreamError,
    DownstreamTimeoutError,
    DownstreamUnavailableError,
    ResilientClient,
)
from stockflow_kit.observability import configure_logging, configure_tracing
from stockflow_kit.resilience import DEADLINE_HEADER
from stockflow_kit.resilience.testing import ManualClock

pytestmark = pytest.mark.timeout(60)

CORRELATION_ID = "loopback-12345678"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
RESET_TIMEOUT = 5.0  # on the ManualClock
_log = structlog.get_logger("loopback")


# ---------------------------------------------------------------- the two services


@dataclass
class Back:
    """The back service's switch, and the headers of every request it received."""

    failing: bool = False
    received: list[dict[str, str | None]] = field(default_factory=list)


def back_app(back: Back, registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()

    @app.get("/back")
    async def serve_back(request: Request) -> dict[str, int]:
        names = ("x-correlation-id", "traceparent", DEADLINE_HEADER.lower())
        back.received.append({name: request.headers.get(name) for name in names})
        if back.failing:
            raise HTTPException(500, "Switched to failing by the test.")
        _log.info("back.stock_read")
        return {"on_hand": 42}

    instrument(app, service="back", registry=registry)
    return app


def front_app(back_url: str, registry: CollectorRegistry, clock: ManualClock) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ResilientClient(
            "back",
            back_url,
            timeout=2.0,
            failure_threshold=3,
            reset_timeout=RESET_TIMEOUT,
            registry=registry,
            clock=clock,
        ) as client:
            app.state.back = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/front")
    async def serve_front(request: Request) -> dict[str, Any]:
        response = await request.app.state.back.get("/back", route="/back")
        _log.info("front.stock_read")
        return {"from_back": response.json()}

    errors = ErrorTable(
        {
            DownstreamUnavailableError: (503, "Dependency unavailable"),
            DownstreamTimeoutError: (504, "Dependency timed out"),
            DownstreamError: (502, "Dependency failed"),
        }
    )
    instrument(app, service="front", errors=errors, registry=registry)
    return app


@dataclass
class Served:
    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 10)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[Served]:
    """Serve *app* with uvicorn on a free loopback port until the block ends."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_config=None,  # keep configure_logging()'s handler
        access_log=False,  # the kit's MetricsMiddleware writes the access log
        ws="none",
        http="h11",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    await task  # startup failed: show why
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        served = Served(f"http://127.0.0.1:{port}", server, task)
        yield served
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


# ---------------------------------------------------------------- process-wide setup


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """configure_logging() to a buffer; the stdlib logging setup is restored after."""
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level) for n in names}
    propagate = {n: logging.getLogger(n).propagate for n in names}
    stream = io.StringIO()
    configure_logging(json=True, level="INFO", stream=stream)
    yield stream
    for name, (handlers, level) in saved.items():
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if h not in handlers]:
            logger.removeHandler(handler)
            handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate[name]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """configure_tracing() with an in-memory exporter; the OpenTelemetry globals restored after.

    OpenTelemetry allows one global provider per process; its own tests reset these private
    globals the same way.
    """
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done)
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE._done = False
    exporter = InMemorySpanExporter()
    configure_tracing("loopback", exporter=exporter)
    yield exporter
    installed: object = trace.get_tracer_provider()
    if isinstance(installed, TracerProvider):
        installed.shutdown()
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done = saved


def log_records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


class Metrics:
    """One scrape of a /metrics page."""

    def __init__(self, text: str) -> None:
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, metric: str, **labels: str) -> float:
        return self.samples.get((metric, frozenset(labels.items())), 0.0)

    def breaker_state(self) -> float:
        return self.value("circuit_breaker_state", name="back")

    def transitions(self, from_state: str, to_state: str) -> float:
        labels = {"name": "back", "from_state": from_state, "to_state": to_state}
        return self.value("circuit_breaker_transitions_total", **labels)

    def client_requests(self, status: str = "", error: str = "") -> float:
        labels = {"downstream": "back", "method": "GET", "route": "/back"}
        return self.value("http_client_requests_total", **labels, status=status, error=error)

    def server_requests(self, status: int) -> float:
        labels = {"method": "GET", "route": "/front", "status": str(status)}
        return self.value("http_requests_total", **labels)


# ---------------------------------------------------------------- the test


async def test_two_services_share_ids_and_the_front_breaker_opens_and_closes_on_the_back(
    log_stream: io.StringIO, spans: InMemorySpanExporter
) -> None:
    back, clock = Back(), ManualClock()
    async with (
        serving(back_app(back, CollectorRegistry())) as back_server,
        serving(front_app(back_server.url, CollectorRegistry(), clock)) as front_server,
        httpx.AsyncClient(base_url=front_server.url, timeout=10.0) as caller,
    ):

        async def scrape() -> Metrics:
            return Metrics((await caller.get("/metrics")).text)

        # 1. One request crosses both services with one correlation id and one trace.
        incoming = {"X-Correlation-ID": CORRELATION_ID, "traceparent": TRACEPARENT}
        answer = await caller.get("/front", headers=incoming)
        assert answer.status_code == 200
        assert answer.json() == {"from_back": {"on_hand": 42}}
        assert answer.headers["X-Correlation-ID"] == CORRELATION_ID
        (received,) = back.received
        assert received["x-correlation-id"] == CORRELATION_ID
        assert received["traceparent"] is not None
        assert received["traceparent"].split("-")[1] == TRACE_ID
        assert 0 < int(received[DEADLINE_HEADER.lower()] or 0) <= 30_000
        _assert_logs_share_the_ids(log_records(log_stream))
        _assert_the_back_span_is_a_child_of_the_front_client_span(spans, received["traceparent"])
        assert (await scrape()).breaker_state() == 0

        # 2. The back fails: three failed attempts open the breaker, then the front fails fast.
        back.failing = True
        first = await caller.get("/front")
        assert first.status_code == 502
        assert len(back.received) == 4
        fast = [await caller.get("/front") for _ in range(3)]
        assert len(back.received) == 4  # the back saw none of them
        for response in fast:
            _assert_is_a_problem(response, 503)
        metrics = await scrape()
        assert metrics.breaker_state() == 2
        assert metrics.transitions("closed", "open") == 1
        assert metrics.client_requests(status="200") == 1
        assert metrics.client_requests(status="500") == 3
        assert metrics.client_requests(error="circuit_open") == 3
        assert (metrics.server_requests(200), metrics.server_requests(502)) == (1, 1)
        assert metrics.server_requests(503) == 3

        # 3. The back recovers; after the reset timeout one trial call closes the breaker.
        back.failing = False
        clock.advance(RESET_TIMEOUT)
        recovered = await caller.get("/front")
        assert recovered.status_code == 200
        assert len(back.received) == 5
        metrics = await scrape()
        assert metrics.breaker_state() == 0
        assert metrics.transitions("open", "half_open") == 1
        assert metrics.transitions("half_open", "closed") == 1
        assert (
            metrics.value(
                "http_client_request_duration_seconds_count", downstream="back", method="GET"
            )
            == 5
        )

        # 4. The back goes away: connections are refused, and the front still answers a 503.
        await back_server.stop()
        _assert_is_a_problem(await caller.get("/front"), 503)
        metrics = await scrape()
        assert metrics.client_requests(error="connect_error") >= 1
        assert metrics.breaker_state() == 2

    records = log_records(log_stream)
    assert not [r for r in records if r.get("event") == "http.unhandled_exception"]
    assert "Traceback" not in log_stream.getvalue()


def _assert_logs_share_the_ids(records: list[dict[str, Any]]) -> None:
    ours = [r for r in records if r.get("correlation_id") == CORRELATION_ID]
    events = {(r.get("service"), r["event"]) for r in ours}
    assert {
        ("front", "front.stock_read"),
        ("front", "http.request_completed"),
        ("back", "back.stock_read"),
        ("back", "http.request_completed"),
    } <= events
    assert {r.get("trace_id") for r in ours} == {TRACE_ID}


def _assert_the_back_span_is_a_child_of_the_front_client_span(
    exporter: InMemorySpanExporter, traceparent: str
) -> None:
    finished = [
        s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE_ID
    ]
    (client,) = [s for s in finished if s.kind is SpanKind.CLIENT]
    servers = [s for s in finished if s.kind is SpanKind.SERVER]
    assert client.attributes is not None
    assert client.attributes["peer.service"] == "back"
    assert traceparent.split("-")[2] == f"{client.context.span_id:016x}"
    assert any(s.parent is not None and s.parent.span_id == client.context.span_id for s in servers)
    assert len(servers) == 2


def _assert_is_a_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]
    assert "Traceback" not in response.text
