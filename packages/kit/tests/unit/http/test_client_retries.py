"""ResilientClient retries: which requests, on what, how long to wait, and what stops them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.http.client import (
    DownstreamClientError,
    DownstreamServerError,
    DownstreamTimeoutError,
    DownstreamUnavailableError,
    ResilientClient,
)
from stockflow_kit.http.testing import FakeDownstream
from stockflow_kit.resilience import Deadline, DeadlineExceededError, RetryBudget
from stockflow_kit.resilience.testing import ManualClock, set_testing


class HalfRandom:
    """Jitter that always draws the middle of the interval."""

    def random(self) -> float:
        return 0.5


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


def make_client(
    downstream: FakeDownstream, registry: CollectorRegistry, clock: ManualClock, **options: Any
) -> ResilientClient:
    defaults: dict[str, Any] = {"failure_threshold": 100, "clock": clock, "sleep": clock.sleep}
    return ResilientClient(
        "stock",
        "http://stock.test",
        transport=httpx.MockTransport(downstream),
        registry=registry,
        **{**defaults, **options},
    )


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
async def test_idempotent_methods_are_retried_until_they_succeed(method, registry, clock) -> None:
    downstream = FakeDownstream(503, 502, 200)

    async with make_client(downstream, registry, clock) as client:
        response = await client.request(method, "/stock/SKU-1")

    assert response.status_code == 200
    assert len(downstream.requests) == 3


async def test_a_post_without_an_idempotency_key_is_never_retried(registry, clock) -> None:
    downstream = FakeDownstream(503, 200)

    async with make_client(downstream, registry, clock) as client:
        with pytest.raises(DownstreamServerError):
            await client.post("/orders", json={"sku": "SKU-1"})

    assert len(downstream.requests) == 1


async def test_a_post_without_a_key_is_not_retried_on_connection_errors_either(
    registry, clock
) -> None:
    downstream = FakeDownstream(httpx.ConnectError("refused"), 200)

    async with make_client(downstream, registry, clock) as client:
        with pytest.raises(DownstreamUnavailableError):
            await client.post("/orders", json={"sku": "SKU-1"})

    assert len(downstream.requests) == 1


async def test_a_post_with_an_idempotency_key_is_retried_with_the_same_key_and_body(
    registry, clock
) -> None:
    downstream = FakeDownstream(httpx.ReadTimeout("slow"), 500, 201)

    async with make_client(downstream, registry, clock) as client:
        response = await client.post("/orders", json={"sku": "SKU-1"}, idempotency_key="k-1")

    assert response.status_code == 201
    assert [r.headers["Idempotency-Key"] for r in downstream.requests] == ["k-1"] * 3
    assert {r.read() for r in downstream.requests} == {b'{"sku":"SKU-1"}'}


async def test_an_idempotency_key_given_as_a_header_makes_any_method_retryable(
    registry, clock
) -> None:
    downstream = FakeDownstream(503, 200)

    async with make_client(downstream, registry, clock) as client:
        response = await client.request("PATCH", "/p", headers={"Idempotency-Key": "k-2"})

    assert response.status_code == 200
    assert len(downstream.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
async def test_client_errors_other_than_429_are_not_retried(status, registry, clock) -> None:
    downstream = FakeDownstream(status, 200)

    async with make_client(downstream, registry, clock) as client:
        with pytest.raises(DownstreamClientError) as caught:
            await client.get("/stock/SKU-1")

    assert caught.value.status == status
    assert len(downstream.requests) == 1


async def test_the_last_error_is_raised_when_the_attempts_are_used_up(registry, clock) -> None:
    downstream = FakeDownstream(500, 502, 504, 200)

    async with make_client(downstream, registry, clock, attempts=3) as client:
        with pytest.raises(DownstreamServerError) as caught:
            await client.get("/stock/SKU-1")

    assert caught.value.status == 504
    assert len(downstream.requests) == 3


async def test_retry_delays_are_full_jitter_under_the_exponential_cap(registry, clock) -> None:
    """delay_n = uniform(0, min(wait_max, wait_initial * wait_exp_base ** (n - 1)))."""
    downstream = FakeDownstream(503, 503, 503, 503, 200)
    options = {"attempts": 5, "wait_initial": 0.2, "wait_max": 0.5, "rng": HalfRandom()}

    with set_testing(False):
        async with make_client(downstream, registry, clock, **options) as client:
            await client.get("/stock/SKU-1")

    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.25, 0.25])


async def test_retry_after_is_waited_for_instead_of_the_backoff(registry, clock) -> None:
    downstream = FakeDownstream(httpx.Response(429, headers={"Retry-After": "3"}), 200)

    with set_testing(False):
        async with make_client(downstream, registry, clock, rng=HalfRandom()) as client:
            response = await client.get("/stock/SKU-1")

    assert response.status_code == 200
    assert clock.sleeps == [3.0]


async def test_a_retry_after_beyond_the_deadline_is_not_waited_for(registry, clock) -> None:
    downstream = FakeDownstream(httpx.Response(503, headers={"Retry-After": "60"}), 200)

    with set_testing(False):
        async with make_client(downstream, registry, clock, total_timeout=5.0) as client:
            with pytest.raises(DownstreamServerError) as caught:
                await client.get("/stock/SKU-1")

    assert caught.value.retry_after == 60.0
    assert clock.sleeps == []
    assert len(downstream.requests) == 1


async def test_no_retry_starts_once_the_deadline_has_passed(registry, clock) -> None:
    downstream = FakeDownstream(503, 200)

    def slow_failure(request: httpx.Request) -> httpx.Response:
        clock.advance(2.0)  # the attempt used up the whole budget
        return downstream(request)

    client = ResilientClient(
        "stock",
        "http://stock.test",
        transport=httpx.MockTransport(slow_failure),
        registry=registry,
        clock=clock,
        total_timeout=2.0,
    )
    async with client:
        with pytest.raises(DownstreamServerError):
            await client.get("/stock/SKU-1")

    assert len(downstream.requests) == 1


async def test_a_call_whose_deadline_has_passed_is_not_sent(registry, clock) -> None:
    downstream = FakeDownstream(200)

    async with make_client(downstream, registry, clock) as client:
        with pytest.raises(DownstreamTimeoutError) as caught:
            await client.get("/stock/SKU-1", deadline=Deadline(0.0, clock=clock))

    assert isinstance(caught.value.__cause__, DeadlineExceededError)
    assert downstream.requests == []


async def test_the_retry_budget_stops_a_retry_storm(registry, clock) -> None:
    """With ratio 0.1 and no floor, 20 failing calls may add 2 retries, not 40."""
    downstream = FakeDownstream(503)
    budget = RetryBudget(
        "stock", ratio=0.1, min_retries_per_second=0.0, clock=clock, registry=registry
    )

    async with make_client(downstream, registry, clock, budget=budget) as client:
        for _ in range(20):
            with pytest.raises(DownstreamServerError):
                await client.get("/stock/SKU-1")

    assert len(downstream.requests) == 22
    assert budget.retries == 2
    assert registry.get_sample_value("retry_budget_denied_total", {"name": "stock"}) == 20


async def test_the_default_budget_is_shared_by_every_call_of_a_client(registry, clock) -> None:
    downstream = FakeDownstream(503, 200)

    async with make_client(downstream, registry, clock) as client:
        await client.get("/a")
        await client.get("/b")

    assert client.budget.requests == 2
    assert client.budget.retries == 1
