import asyncio
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from stockflow_kit.resilience import CircuitBreaker, CircuitOpenError, CircuitState
from stockflow_kit.resilience.testing import ManualClock


class Unavailable(Exception):
    pass


async def fail() -> None:
    raise Unavailable


async def succeed() -> str:
    return "ok"


async def attempt(breaker: CircuitBreaker, fn: Callable[[], Awaitable[object]] = succeed) -> str:
    """Call *fn* through the breaker and say what happened."""
    try:
        await breaker.call(fn)
    except CircuitOpenError:
        return "rejected"
    except Unavailable:
        return "failed"
    except LookupError:
        return "ignored"
    return "ok"


def state_of(breaker: CircuitBreaker) -> CircuitState:
    return breaker.state


def make(clock: ManualClock, registry: CollectorRegistry, **kwargs: object) -> CircuitBreaker:
    settings: dict[str, object] = {"failure_threshold": 3, "reset_timeout": 10.0} | kwargs
    return CircuitBreaker(
        "inventory",
        on=Unavailable,
        clock=clock,
        registry=registry,
        **settings,  # type: ignore[arg-type]
    )


async def test_consecutive_failures_open_the_breaker_and_open_rejects_without_calling(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry)
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1
        raise Unavailable

    assert [await attempt(breaker, counted) for _ in range(4)] == [
        "failed", "failed", "failed", "rejected",
    ]  # fmt: skip
    assert calls == 3
    assert state_of(breaker) is CircuitState.OPEN


async def test_a_success_resets_the_consecutive_failure_count(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry)

    for fn in (fail, fail, succeed, fail, fail):
        await attempt(breaker, fn)

    assert state_of(breaker) is CircuitState.CLOSED


async def test_the_open_error_carries_the_name_and_the_seconds_until_a_trial(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=1)
    await attempt(breaker, fail)
    clock.advance(4.0)

    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(succeed)

    assert (caught.value.name, caught.value.retry_after) == ("inventory", 6.0)
    assert "inventory" in str(caught.value)


async def test_after_the_reset_timeout_a_trial_success_closes_the_breaker(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=1)
    await attempt(breaker, fail)
    clock.advance(10.0)

    assert state_of(breaker) is CircuitState.HALF_OPEN
    assert await attempt(breaker) == "ok"
    assert state_of(breaker) is CircuitState.CLOSED


async def test_a_trial_failure_reopens_the_breaker_for_another_reset_timeout(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=1)
    await attempt(breaker, fail)
    clock.advance(10.0)

    assert await attempt(breaker, fail) == "failed"
    assert state_of(breaker) is CircuitState.OPEN
    assert breaker.retry_after() == 10.0


async def test_closing_needs_success_threshold_trial_successes(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=1, success_threshold=2)
    await attempt(breaker, fail)
    clock.advance(10.0)

    await attempt(breaker)
    assert state_of(breaker) is CircuitState.HALF_OPEN
    await attempt(breaker)
    assert state_of(breaker) is CircuitState.CLOSED


async def test_half_open_admits_only_the_configured_number_of_concurrent_trials(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=1, half_open_max_calls=2)
    await attempt(breaker, fail)
    clock.advance(10.0)
    release = asyncio.Event()
    admitted = 0

    async def slow() -> None:
        nonlocal admitted
        admitted += 1
        await release.wait()

    tasks = [asyncio.create_task(attempt(breaker, slow)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks)

    assert admitted == 2
    assert sorted(results) == ["ok", "ok", "rejected", "rejected", "rejected"]
    assert state_of(breaker) is CircuitState.CLOSED


async def test_the_failure_rate_trips_the_breaker_once_enough_calls_are_seen(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(
        clock,
        registry,
        failure_threshold=None,
        failure_rate_threshold=0.5,
        minimum_calls=6,
        window_size=10,
    )

    for fn in (fail, succeed, fail, succeed, fail):
        await attempt(breaker, fn)
    assert state_of(breaker) is CircuitState.CLOSED  # 3 of 5: too few calls to judge

    await attempt(breaker, succeed)
    assert state_of(breaker) is CircuitState.CLOSED  # 3 of 6 judged only when a failure arrives
    await attempt(breaker, fail)
    assert state_of(breaker) is CircuitState.OPEN  # 4 of 7 ≥ 50 %


async def test_the_failure_rate_only_looks_at_the_sliding_window(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(
        clock,
        registry,
        failure_threshold=None,
        failure_rate_threshold=0.5,
        minimum_calls=4,
        window_size=4,
    )

    for fn in (fail, fail, fail, succeed, succeed, succeed, fail):
        await attempt(breaker, fn)

    assert state_of(breaker) is CircuitState.CLOSED  # window: ok ok ok fail = 25 %


async def test_exceptions_not_named_in_on_pass_through_and_count_as_nothing(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=2)

    async def not_found() -> None:
        raise KeyError("SKU-1")

    for fn in (fail, not_found, not_found, fail):
        await attempt(breaker, fn)

    assert state_of(breaker) is CircuitState.OPEN  # the KeyErrors did not reset the count
    assert registry.get_sample_value(
        "circuit_breaker_calls_total", {"name": "inventory", "outcome": "ignored"}
    ) == 2  # fmt: skip


async def test_cancellation_is_never_counted_and_frees_the_trial_slot(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=1)
    await attempt(breaker, fail)
    clock.advance(10.0)

    task = asyncio.create_task(breaker.call(asyncio.sleep, 3600))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert state_of(breaker) is CircuitState.HALF_OPEN
    assert await attempt(breaker) == "ok"
    assert registry.get_sample_value(
        "circuit_breaker_calls_total", {"name": "inventory", "outcome": "cancelled"}
    ) == 1  # fmt: skip


async def test_results_of_calls_admitted_before_a_transition_change_nothing(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=1)
    release = asyncio.Event()

    async def late_success() -> None:
        await release.wait()

    straggler = asyncio.create_task(attempt(breaker, late_success))
    await asyncio.sleep(0)
    await attempt(breaker, fail)  # opens the breaker while the straggler is in flight
    release.set()
    await straggler

    assert state_of(breaker) is CircuitState.OPEN


async def test_the_context_manager_and_the_decorator_guard_calls_too(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=2)

    @breaker
    async def fetch(sku: str) -> str:
        raise Unavailable(sku)

    with pytest.raises(Unavailable):
        await fetch("SKU-1")

    async def nested() -> None:
        async with breaker, breaker:  # nested use in one task keeps a permit per level
            raise Unavailable

    with pytest.raises(Unavailable):
        await nested()

    assert state_of(breaker) is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("an open breaker must not run the block")


async def test_metrics_follow_every_transition(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=1)

    def state() -> float | None:
        return registry.get_sample_value("circuit_breaker_state", {"name": "inventory"})

    def transitions(before: str, after: str) -> float | None:
        return registry.get_sample_value(
            "circuit_breaker_transitions_total",
            {"name": "inventory", "from_state": before, "to_state": after},
        )

    assert state() == 0
    await attempt(breaker, fail)
    assert state() == 2
    await attempt(breaker)
    clock.advance(10.0)
    assert state_of(breaker) is CircuitState.HALF_OPEN
    assert state() == 1
    await attempt(breaker)
    assert state() == 0

    assert transitions("closed", "open") == 1
    assert transitions("open", "half_open") == 1
    assert transitions("half_open", "closed") == 1
    outcomes = {
        outcome: registry.get_sample_value(
            "circuit_breaker_calls_total", {"name": "inventory", "outcome": outcome}
        )
        for outcome in ("success", "failure", "rejected")
    }
    assert outcomes == {"success": 1, "failure": 1, "rejected": 1}


async def test_each_transition_is_logged_with_the_name_and_both_states(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = make(clock, registry, failure_threshold=1)

    with capture_logs() as logs:
        await attempt(breaker, fail)
        clock.advance(10.0)
        await attempt(breaker, fail)

    assert [(log["event"], log["from"], log["to"], log["log_level"]) for log in logs] == [
        ("circuit_breaker.state_changed", "closed", "open", "warning"),
        ("circuit_breaker.state_changed", "open", "half_open", "info"),
        ("circuit_breaker.state_changed", "half_open", "open", "warning"),
    ]
    assert {log["name"] for log in logs} == {"inventory"}


async def test_a_predicate_on_decides_what_counts_as_a_failure(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    breaker = CircuitBreaker(
        "profiles",
        on=lambda exc: "503" in str(exc),
        failure_threshold=1,
        clock=clock,
        registry=registry,
    )

    with pytest.raises(RuntimeError):
        await breaker.call(_raise, RuntimeError("404"))
    assert state_of(breaker) is CircuitState.CLOSED
    with pytest.raises(RuntimeError):
        await breaker.call(_raise, RuntimeError("503"))
    assert state_of(breaker) is CircuitState.OPEN


async def _raise(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize(
    "kwargs",
    [
        {"on": int},
        {"on": (Unavailable, 3)},
        {"on": Unavailable, "failure_threshold": None},
        {"on": Unavailable, "failure_threshold": 0},
        {"on": Unavailable, "failure_rate_threshold": 1.5},
        {"on": Unavailable, "minimum_calls": 30, "window_size": 20},
        {"on": Unavailable, "half_open_max_calls": 0},
    ],
)
def test_invalid_settings_are_refused(
    kwargs: dict[str, object], registry: CollectorRegistry
) -> None:
    with pytest.raises((TypeError, ValueError)):
        CircuitBreaker("x", registry=registry, **kwargs)  # type: ignore[arg-type]
