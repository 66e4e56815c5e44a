import stockflow_kit.resilience as resilience
from stockflow_kit.resilience import (
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceededError,
    ResilienceError,
)


def test_the_public_api_is_pinned() -> None:
    assert sorted(resilience.__all__) == sorted(
        [
            "DEADLINE_HEADER",
            "Attempt",
            "Backoff",
            "BackoffHook",
            "Bulkhead",
            "BulkheadFullError",
            "CircuitBreaker",
            "CircuitOpenError",
            "CircuitState",
            "Clock",
            "Deadline",
            "DeadlineExceededError",
            "ErrorFilter",
            "RandomSource",
            "ResilienceError",
            "RetryBudget",
            "RetryOn",
            "Retrying",
            "Sleep",
            "backoff_delay",
            "current_deadline",
            "format_deadline_header",
            "parse_deadline_header",
            "retry",
            "retrying",
        ]
    )
    assert all(hasattr(resilience, name) for name in resilience.__all__)


def test_every_error_the_toolkit_raises_is_a_resilience_error() -> None:
    for error in (CircuitOpenError, BulkheadFullError, DeadlineExceededError):
        assert issubclass(error, ResilienceError)


def test_errors_survive_pickling_with_their_data() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(CircuitOpenError("inventory", 2.5)))
    assert (error.name, error.retry_after) == ("inventory", 2.5)
    full = pickle.loads(pickle.dumps(BulkheadFullError("inventory", "queue_full")))
    assert (full.name, full.reason) == ("inventory", "queue_full")
