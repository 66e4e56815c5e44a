"""ResilientClient failures: the exception tree, the circuit breaker and the bulkhead."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.http import client as client_module
from stockflow_kit.http.client import (
    DownstreamClientError,
    DownstreamError,
    DownstreamServerError,
    DownstreamStatusError,
    DownstreamTimeoutError,
    DownstreamTransportError,
    DownstreamUnavailableError,
    ResilientClient,
    is_downstream_failure,
    parse_retry_after,
)
from stockflow_kit.http.testing import FakeDownstream
from stockflow_kit.resilience import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Deadline,
)
from stockflow_kit.resilience.testing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


def make_client(
    handler: Any, registry: CollectorRegistry, clock: ManualClock, **options: Any
) -> ResilientClient:
    return ResilientClient(
        "stock",
        "http://stock.test",
        transport=httpx.MockTransport(handler),
        registry=registry,
        clock=clock,
        **options,
    )


def breaker_state(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("circuit_breaker_state", {"name": "stock"})


# ---------------------------------------------------------------- the exception tree


@pytest.mark.parametrize(
    ("raised", "expected", "attempts"),
    [
        (httpx.ConnectError("refused"), DownstreamUnavailableError, 3),
        (httpx.ConnectTimeout("no SYN-ACK"), DownstreamTimeoutError, 3),
        (httpx.ReadTimeout("no answer"), DownstreamTimeoutError, 3),
        (httpx.RemoteProtocolError("closed early"), DownstreamTransportError, 3),
        (httpx.ReadError("reset by peer"), DownstreamTransportError, 3),
        (httpx.UnsupportedProtocol("gopher"), DownstreamTransportError, 3),
    ],
)
async def test_transport_errors_are_mapped_with_the_original_chained(
    raised, expected, attempts, registry, clock
) -> None:
    downstream = FakeDownstream(raised)

    async with make_client(downstream, registry, clock) as client:
        with pytest.raises(expected) as caught:
            await client.get("/stock/SKU-1?token=secret")

    error = caught.value
    assert isinstance(error, DownstreamError)
    assert error.__cause__ is raised
    assert (error.downstream, error.method, error.path) == ("stock", "GET", "/stock/SKU-1")
    assert "secret" not in str(error)
    assert len(downstream.requests) == attempts


async def test_a_refused_connection_is_unavailable_for_reason_connect_error(
    registry, clock
) -> None:
    async with make_client(FakeDownstream(httpx.ConnectError("x")), registry, clock) as client:
        with pytest.raises(DownstreamUnavailableError) as caught:
            await client.get("/")

    assert caught.value.reason == "connect_error"
    assert caught.value.retry_after is None


async def test_an_attempt_slower_than_its_timeout_is_a_timeout(registry, clock) -> None:
    async def never_answers(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with make_client(never_answers, registry, clock) as client:
        with pytest.raises(DownstreamTimeoutError) as caught:
            await client.post("/orders", attempt_timeout=0.01)

    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_a_4xx_answer_is_a_client_error_with_its_problem_body_parsed(registry, clock) -> None:
    problem = {"type": "/problems/insufficient-stock", "title": "Insufficient stock", "status": 409}
    reply = httpx.Response(
        409, json=problem, headers={"Content-Type": "application/problem+json; charset=utf-8"}
    )

    async with make_client(FakeDownstream(reply), registry, clock) as client:
        with pytest.raises(DownstreamClientError) as caught:
            await client.post("/stock/SKU-1/reservations")

    error = caught.value
    assert isinstance(error, DownstreamStatusError)
    assert (error.status, error.problem) == (409, problem)
    assert error.response.json() == problem
    assert "Insufficient" not in str(error)  # the downstream's words are not ours to repeat


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(500, json={"title": "x"}),  # JSON, but not a problem
        httpx.Response(500, content=b"{", headers={"Content-Type": "application/problem+json"}),
        httpx.Response(500, json=["x"], headers={"Content-Type": "application/problem+json"}),
    ],
)
async def test_a_5xx_answer_is_a_server_error_and_only_problem_objects_are_parsed(
    reply, registry, clock
) -> None:
    async with make_client(FakeDownstream(reply), registry, clock) as client:
        with pytest.raises(DownstreamServerError) as caught:
            await client.get("/")

    assert caught.value.status == 500
    assert caught.value.problem is None


async def test_redirects_are_returned_not_followed(registry, clock) -> None:
    reply = httpx.Response(302, headers={"Location": "/elsewhere"})

    async with make_client(FakeDownstream(reply), registry, clock) as client:
        response = await client.get("/")

    assert response.status_code == 302


async def test_raise_for_status_false_returns_the_last_error_answer_after_the_retries(
    registry, clock
) -> None:
    downstream = FakeDownstream(503, 500, 404)

    async with make_client(downstream, registry, clock) as client:
        server_error = await client.get("/a", raise_for_status=False)
        client_error = await client.get("/b", raise_for_status=False)

    assert (server_error.status_code, client_error.status_code) == (404, 404)
    assert len(downstream.requests) == 4


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)

    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert [parse_retry_after(v) for v in (None, "", " ", "-5", "1.5", "soon")] == [None] * 6


def test_breaker_failures_are_5xx_429_timeouts_and_lost_connections_but_not_4xx() -> None:
    where: dict[str, Any] = {"downstream": "d", "method": "GET", "path": "/"}

    def status(code: int) -> DownstreamStatusError:
        kind = DownstreamServerError if code >= 500 else DownstreamClientError
        return kind("x", response=httpx.Response(code), **where)

    def unavailable(reason: Any) -> DownstreamUnavailableError:
        return DownstreamUnavailableError("x", reason=reason, **where)

    failures = [status(500), status(503), status(429), unavailable("connect_error")]
    failures += [DownstreamTimeoutError("x", **where), DownstreamTransportError("x", **where)]
    others: list[Exception] = [status(400), status(404), ValueError("not ours")]
    others += [unavailable("circuit_open"), unavailable("bulkhead_full")]

    assert all(is_downstream_failure(e) for e in failures)
    assert not any(is_downstream_failure(e) for e in others)


def test_the_public_api_of_the_client_is_pinned() -> None:
    assert sorted(client_module.__all__) == sorted(
        [
            "IDEMPOTENCY_KEY_HEADER",
            "IDEMPOTENT_METHODS",
            "DownstreamClientError",
            "DownstreamError",
            "DownstreamServerError",
            "DownstreamStatusError",
            "DownstreamTimeoutError",
            "DownstreamTransportError",
            "DownstreamUnavailableError",
            "HttpClientMetrics",
            "RequestOptions",
            "ResilientClient",
            "UnavailableReason",
            "http_client_metrics",
            "is_downstream_failure",
            "parse_retry_after",
        ]
    )
    assert all(hasattr(client_module, name) for name in client_module.__all__)


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"total_timeout": -1.0}, {"attempts": 0}],
)
def test_nonsense_settings_are_refused(options) -> None:
    with pytest.raises(ValueError, match="must be"):
        ResilientClient("stock", "http://stock.test", registry=CollectorRegistry(), **options)


# ---------------------------------------------------------------- the circuit breaker


async def test_the_breaker_opens_after_failures_then_fails_fast_without_calling(
    registry, clock
) -> None:
    downstream = FakeDownstream(500)
    options = {"failure_threshold": 3, "reset_timeout": 10.0}

    async with make_client(downstream, registry, clock, **options) as client:
        for _ in range(3):
            with pytest.raises(DownstreamServerError):
                await client.post("/orders")
        assert breaker_state(registry) == 2
        with pytest.raises(DownstreamUnavailableError) as caught:
            await client.get("/stock/SKU-1")

    assert len(downstream.requests) == 3
    assert caught.value.reason == "circuit_open"
    assert caught.value.retry_after == 10.0
    assert isinstance(caught.value.__cause__, CircuitOpenError)


async def test_a_retried_call_stops_retrying_when_the_breaker_opens(registry, clock) -> None:
    downstream = FakeDownstream(503)

    async with make_client(downstream, registry, clock, failure_threshold=2) as client:
        with pytest.raises(DownstreamUnavailableError):
            await client.get("/stock/SKU-1")

    assert len(downstream.requests) == 2


async def test_the_breaker_half_opens_after_the_reset_timeout_and_closes_on_success(
    registry, clock
) -> None:
    downstream = FakeDownstream(500, 500, 200)
    options = {"failure_threshold": 2, "reset_timeout": 5.0}

    async with make_client(downstream, registry, clock, **options) as client:
        for _ in range(2):
            with pytest.raises(DownstreamServerError):
                await client.post("/orders")
        clock.advance(5.0)
        half_open = client.breaker.state
        response = await client.get("/stock/SKU-1")

    assert half_open is CircuitState.HALF_OPEN
    assert response.status_code == 200
    assert client.breaker.state is CircuitState.CLOSED
    assert breaker_state(registry) == 0


async def test_client_errors_do_not_open_the_breaker(registry, clock) -> None:
    async with make_client(FakeDownstream(404), registry, clock, failure_threshold=1) as client:
        for _ in range(5):
            with pytest.raises(DownstreamClientError):
                await client.get("/stock/unknown")

    assert client.breaker.state is CircuitState.CLOSED
    labels = {"name": "stock", "outcome": "success"}
    assert registry.get_sample_value("circuit_breaker_calls_total", labels) == 5


async def test_an_injected_breaker_is_used(registry, clock) -> None:
    breaker = CircuitBreaker(
        "stock-shared",
        on=is_downstream_failure,
        failure_threshold=1,
        clock=clock,
        registry=registry,
    )
    downstream = FakeDownstream(httpx.ConnectError("refused"))

    async with make_client(downstream, registry, clock, breaker=breaker) as client:
        with pytest.raises(DownstreamUnavailableError) as caught:
            await client.get("/")

    assert client.breaker is breaker
    assert breaker.state is CircuitState.OPEN
    assert caught.value.reason == "circuit_open"  # the retry met the open breaker
    assert len(downstream.requests) == 1


# ---------------------------------------------------------------- the bulkhead


class GatedDownstream:
    """Holds every request until released; counts the requests that arrived."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.count = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        self.arrived.set()
        await self.release.wait()
        return httpx.Response(200)


async def test_the_bulkhead_rejects_calls_beyond_its_limit_without_calling(registry, clock) -> None:
    downstream = GatedDownstream()
    options = {"max_concurrent": 1, "max_queue": 0}

    async with make_client(downstream, registry, clock, **options) as client:
        first = asyncio.create_task(client.get("/slow"))
        await downstream.arrived.wait()
        with pytest.raises(DownstreamUnavailableError) as caught:
            await client.get("/fast")
        downstream.release.set()
        assert (await first).status_code == 200

    assert caught.value.reason == "bulkhead_full"
    assert isinstance(caught.value.__cause__, BulkheadFullError)
    assert downstream.count == 1
    assert client.breaker.state is CircuitState.CLOSED


async def test_a_caller_queued_at_the_bulkhead_gives_up_at_its_deadline(registry, clock) -> None:
    downstream = GatedDownstream()
    bulkhead = Bulkhead("stock", max_concurrent=1, queue_timeout=60.0, registry=registry)

    async with make_client(downstream, registry, clock, bulkhead=bulkhead) as client:
        first = asyncio.create_task(client.get("/slow"))
        await downstream.arrived.wait()
        with pytest.raises(DownstreamTimeoutError):  # a real 10 ms: the queue waits on the loop
            await client.get("/queued", deadline=Deadline(0.01))
        assert bulkhead.queued == 0
        downstream.release.set()
        await first

    assert downstream.count == 1
