import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator

import pytest
import stamina
import stamina.instrumentation
from prometheus_client import REGISTRY, CollectorRegistry
from stamina.instrumentation import RetryDetails
from structlog.testing import capture_logs

from stockflow_kit.resilience import (
    Deadline,
    DeadlineExceededError,
    RetryBudget,
    retry,
    retrying,
)
from stockflow_kit.resilience.testing import ManualClock, set_testing


class Flaky:
    """Raises the given errors in order, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def run(flaky: Flaky, **kwargs: object) -> str:
    async for attempt in retrying(**kwargs):  # type: ignore[arg-type]
        with attempt:
            return await flaky()
    raise AssertionError("unreachable")


async def test_matching_errors_are_retried_until_the_call_succeeds() -> None:
    flaky = Flaky(ConnectionError(), ConnectionError())

    assert await run(flaky, on=ConnectionError, attempts=3) == "ok"
    assert flaky.calls == 3


async def test_errors_that_do_not_match_on_are_raised_at_once() -> None:
    flaky = Flaky(KeyError("sku"))

    with pytest.raises(KeyError):
        await run(flaky, on=ConnectionError, attempts=5)
    assert flaky.calls == 1


async def test_the_last_error_is_raised_when_the_attempts_are_used_up() -> None:
    flaky = Flaky(*(ConnectionError(n) for n in range(1, 10)))

    with pytest.raises(ConnectionError) as caught:
        await run(flaky, on=ConnectionError, attempts=4)
    assert flaky.calls == 4
    assert caught.value.args == (4,)


async def test_a_predicate_on_decides_which_errors_are_retried() -> None:
    flaky = Flaky(ValueError("retry me"), ValueError("fatal"))

    with pytest.raises(ValueError, match="fatal"):
        await run(flaky, on=lambda exc: "retry" in str(exc), attempts=5)
    assert flaky.calls == 2


async def test_waits_follow_full_jitter_within_the_exponential_cap(clock: ManualClock) -> None:
    class Top:
        def random(self) -> float:
            return 0.999

    flaky = Flaky(*(ConnectionError() for _ in range(4)))
    with set_testing(False):
        result = await run(
            flaky, on=ConnectionError, attempts=5, sleep=clock.sleep, clock=clock, rng=Top()
        )

    assert result == "ok"
    assert clock.sleeps == pytest.approx([0.0999, 0.1998, 0.3996, 0.7992])


async def test_a_backoff_hook_can_set_the_delay_itself(clock: ManualClock) -> None:
    flaky = Flaky(ConnectionError(), ConnectionError())

    with set_testing(False):
        await run(
            flaky,
            on=lambda _exc: dt.timedelta(seconds=1.5),
            attempts=3,
            sleep=clock.sleep,
            clock=clock,
        )

    assert clock.sleeps == [1.5, 1.5]


async def test_test_mode_removes_every_wait(clock: ManualClock) -> None:
    flaky = Flaky(ConnectionError(), ConnectionError())

    with set_testing(True):
        await run(flaky, on=ConnectionError, attempts=3, sleep=clock.sleep, wait_initial=10)

    assert clock.sleeps == []


async def test_test_mode_keeps_the_configured_attempts() -> None:
    flaky = Flaky(*(ConnectionError() for _ in range(5)))

    with set_testing(True, attempts=2):
        assert await run(flaky, on=ConnectionError, attempts=6) == "ok"
    assert flaky.calls == 6


async def test_no_retry_is_made_when_retrying_is_switched_off() -> None:
    flaky = Flaky(ConnectionError())
    stamina.set_active(False)
    try:
        with pytest.raises(ConnectionError):
            await run(flaky, on=ConnectionError, attempts=3)
    finally:
        stamina.set_active(True)
    assert flaky.calls == 1


async def test_no_sleep_ever_ends_past_the_deadline(clock: ManualClock) -> None:
    class Top:
        def random(self) -> float:
            return 0.999

    flaky = Flaky(*(ConnectionError(n) for n in range(1, 20)))
    deadline = Deadline(1.0, clock=clock)
    with set_testing(False), capture_logs() as logs, pytest.raises(ConnectionError):
        await run(
            flaky,
            on=ConnectionError,
            attempts=None,
            deadline=deadline,
            sleep=clock.sleep,
            rng=Top(),
        )

    # 0.0999 + 0.1998 + 0.3996 = 0.6993; the next delay (0.7992) would pass 1.0.
    assert flaky.calls == 4
    assert sum(clock.sleeps) < 1.0
    assert [log["reason"] for log in logs if log["event"] == "retry.abandoned"] == ["deadline"]


async def test_timeout_is_an_overall_deadline_counted_from_the_first_attempt(
    clock: ManualClock,
) -> None:
    flaky = Flaky(*(ConnectionError() for _ in range(20)))

    with set_testing(False), pytest.raises(ConnectionError):
        await run(
            flaky,
            on=lambda _exc: 2.0,
            attempts=None,
            timeout=5.0,
            sleep=clock.sleep,
            clock=clock,
        )

    assert clock.sleeps == [2.0, 2.0]
    assert flaky.calls == 3


async def test_the_bound_deadline_is_used_when_none_is_given(clock: ManualClock) -> None:
    flaky = Flaky(ConnectionError(), ConnectionError())

    with Deadline(0.0, clock=clock).bind(), pytest.raises(DeadlineExceededError):
        await run(flaky, on=ConnectionError, attempts=3)
    assert flaky.calls == 0


async def test_each_attempt_exposes_the_tighter_of_timeout_and_deadline(
    clock: ManualClock,
) -> None:
    seen = []
    async for attempt in retrying(
        on=ConnectionError, timeout=30.0, deadline=Deadline(2.0, clock=clock), clock=clock
    ):
        with attempt:
            assert attempt.deadline is not None
            seen.append((attempt.num, attempt.deadline.timeout(5.0)))

    assert seen == [(1, 2.0)]


async def test_retries_stop_when_the_budget_is_spent(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    budget = RetryBudget(
        "inventory", ratio=0.5, min_retries_per_second=0, clock=clock, registry=registry
    )
    outcomes = []
    for _ in range(4):
        flaky = Flaky(ConnectionError(), ConnectionError())
        try:
            await run(flaky, on=ConnectionError, attempts=3, budget=budget)
            outcomes.append(flaky.calls)
        except ConnectionError:
            outcomes.append(-flaky.calls)

    # Requests earn 0.5 retries each: 1 request → 0 retries, 2 → 1, 3 → 1, 4 → 2.
    assert outcomes == [-1, -2, -1, -2]
    assert budget.requests == 4
    assert budget.retries == 2
    assert registry.get_sample_value("retry_budget_denied_total", {"name": "inventory"}) == 4


async def test_the_final_attempt_does_not_spend_the_budget(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    budget = RetryBudget(
        ratio=0, min_retries_per_second=1, window=2, clock=clock, registry=registry
    )
    flaky = Flaky(ConnectionError(), ConnectionError(), ConnectionError())

    with pytest.raises(ConnectionError):
        await run(flaky, on=ConnectionError, attempts=2, budget=budget)

    assert budget.retries == 1
    assert budget.available() == 1


async def test_every_scheduled_retry_goes_through_staminas_instrumentation() -> None:
    flaky = Flaky(ConnectionError(), ConnectionError())
    labels = {"callable": "<context block>", "error_type": "ConnectionError"}
    before = REGISTRY.get_sample_value("stamina_retries_total", {**labels, "retry_num": "1"})

    with capture_logs() as logs:
        await run(flaky, on=ConnectionError, attempts=3)

    scheduled = [log for log in logs if log["event"] == "stamina.retry_scheduled"]
    assert [log["retry_num"] for log in scheduled] == [1, 2]
    after = REGISTRY.get_sample_value("stamina_retries_total", {**labels, "retry_num": "1"})
    assert (after or 0) - (before or 0) == 1


async def test_the_decorator_retries_and_names_the_function_in_the_events() -> None:
    flaky = Flaky(ConnectionError())

    @retry(on=ConnectionError, attempts=2)
    async def fetch(sku: str) -> str:
        return await flaky() + sku

    with capture_logs() as logs:
        assert await fetch("SKU-1") == "okSKU-1"
    assert logs[0]["callable"].endswith("fetch")
    assert logs[0]["args"] == ("'SKU-1'",)


def test_the_decorator_refuses_synchronous_functions() -> None:
    with pytest.raises(TypeError, match="async functions"):
        retry(on=ValueError)(lambda: None)  # type: ignore[arg-type, return-value]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"on": int},
        {"on": (ValueError, "nope")},
        {"on": ValueError, "attempts": 0},
        {"on": ValueError, "timeout": -1},
        {"on": ValueError, "wait_exp_base": 0.5},
    ],
)
def test_invalid_settings_are_refused_early(kwargs: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        retrying(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("error", [asyncio.CancelledError(), DeadlineExceededError()])
async def test_cancellation_and_deadline_errors_are_never_retried(error: BaseException) -> None:
    calls = 0

    async def raising() -> None:
        nonlocal calls
        calls += 1
        raise error

    async def loop() -> None:
        async for attempt in retrying(on=lambda _exc: True, attempts=5):
            with attempt:
                await raising()

    with pytest.raises(type(error)):
        await loop()
    assert calls == 1


async def test_the_default_jitter_stays_within_the_cap(clock: ManualClock) -> None:
    flaky = Flaky(*(ConnectionError() for _ in range(3)))

    with set_testing(False):
        await run(flaky, on=ConnectionError, attempts=4, wait_initial=1.0, sleep=clock.sleep)

    assert all(0 <= d <= cap for d, cap in zip(clock.sleeps, [1, 2, 4], strict=True))


async def test_context_managers_returned_by_hooks_are_exited_before_the_retry() -> None:
    events: list[str] = []

    @contextlib.contextmanager
    def around(details: RetryDetails) -> Iterator[None]:
        events.append(f"scheduled {details.retry_num}")
        yield
        events.append(f"exited {details.retry_num}")

    async def call() -> str:
        events.append("attempt")
        return await flaky()

    flaky = Flaky(ConnectionError())
    stamina.instrumentation.set_on_retry_hooks([around])
    try:
        async for attempt in retrying(on=ConnectionError, attempts=2):
            with attempt:
                await call()
    finally:
        stamina.instrumentation.set_on_retry_hooks(None)

    assert events == ["attempt", "scheduled 1", "exited 1", "attempt"]
    assert repr(attempt) == "<Attempt num=2>"
