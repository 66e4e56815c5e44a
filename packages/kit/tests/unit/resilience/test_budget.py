import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.resilience import RetryBudget
from stockflow_kit.resilience.testing import ManualClock


def make(clock: ManualClock, registry: CollectorRegistry, **kwargs: float) -> RetryBudget:
    return RetryBudget("inventory", clock=clock, registry=registry, **kwargs)


def test_retries_are_allowed_up_to_the_ratio_of_recent_requests(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    budget = make(clock, registry, ratio=0.2, min_retries_per_second=0)
    for _ in range(10):
        budget.record_request()

    granted = [budget.try_acquire_retry() for _ in range(5)]

    assert granted == [True, True, False, False, False]
    assert registry.get_sample_value("retry_budget_denied_total", {"name": "inventory"}) == 3


def test_the_floor_allows_some_retries_without_traffic(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    budget = make(clock, registry, ratio=0.2, min_retries_per_second=0.5, window=4.0)

    assert [budget.try_acquire_retry() for _ in range(3)] == [True, True, False]


def test_can_retry_asks_without_spending(clock: ManualClock, registry: CollectorRegistry) -> None:
    budget = make(clock, registry, ratio=1.0, min_retries_per_second=0)
    budget.record_request()

    assert budget.can_retry()
    assert budget.can_retry()
    assert budget.try_acquire_retry()
    assert not budget.can_retry()
    assert registry.get_sample_value("retry_budget_denied_total", {"name": "inventory"}) == 0


def test_requests_and_retries_leave_the_window_as_time_passes(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    budget = make(clock, registry, ratio=0.5, min_retries_per_second=0, window=10.0)
    for _ in range(4):
        budget.record_request()
    assert budget.try_acquire_retry()
    assert budget.try_acquire_retry()
    assert not budget.try_acquire_retry()

    clock.advance(10.0)

    assert (budget.requests, budget.retries, budget.available()) == (0, 0, 0)
    budget.record_request()
    budget.record_request()
    assert budget.try_acquire_retry()


def test_a_failing_dependency_sees_at_most_ratio_extra_load(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    """Every call fails and wants 2 retries; the budget lets through about 20 % extra."""
    budget = make(clock, registry, ratio=0.2, min_retries_per_second=1.0, window=10.0)
    sent = 0
    for _ in range(1000):
        clock.advance(0.01)
        budget.record_request()
        sent += 1
        for _ in range(2):
            if budget.try_acquire_retry():
                sent += 1

    assert sent <= 1000 * 1.2 + 10 + 10


@pytest.mark.parametrize("kwargs", [{"ratio": -0.1}, {"min_retries_per_second": -1}, {"window": 0}])
def test_invalid_settings_are_refused(
    kwargs: dict[str, float], clock: ManualClock, registry: CollectorRegistry
) -> None:
    with pytest.raises(ValueError, match="must"):
        make(clock, registry, **kwargs)
