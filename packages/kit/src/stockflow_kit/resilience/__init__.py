"""Resilience for asyncio clients: retries, backoff, breakers, retry budgets, bulkheads, deadlines.

Each piece works alone and composes with the others; a typical outgoing call nests them as::

    async for attempt in retrying(on=httpx.TransportError, attempts=3, budget=budget):
        with attempt:
            async with bulkhead, breaker:
                async with asyncio.timeout(attempt.deadline.timeout(2.0)):
                    response = await client.get(url)

Retries are a thin layer over stamina (its hooks, metrics, log events and test mode) with
full jitter, a :class:`RetryBudget` and a :class:`Deadline`; :class:`Backoff` is the same
full-jitter delay for loops that retry on their own (fetch, relay, restart). The breaker is
our own (see docs/adr/0002-own-asyncio-circuit-breaker.md). Every component takes an optional Prometheus
``registry`` and an injectable ``clock``; :mod:`stockflow_kit.resilience.testing` has
:func:`~stockflow_kit.resilience.testing.set_testing` and a ``ManualClock`` for tests.

Exceptions raised by the toolkit itself (errors raised *through* it are never wrapped)::

    ResilienceError
     ├── CircuitOpenError        the breaker refused the call    (.name, .retry_after)
     ├── BulkheadFullError       queue full or queue wait over   (.name, .reason)
     └── DeadlineExceededError   the deadline passed before the work could start

A retry that is not made (attempts used up, budget spent, deadline too close) re-raises the
*last* error of the call, as stamina does, rather than an exception of its own.
"""

from ._backoff import Backoff
from ._breaker import CircuitBreaker, CircuitState
from ._budget import RetryBudget
from ._bulkhead import Bulkhead
from ._clock import Clock
from ._deadline import (
    DEADLINE_HEADER,
    Deadline,
    current_deadline,
    format_deadline_header,
    parse_deadline_header,
)
from ._errors import (
    BulkheadFullError,
    CircuitOpenError,
    DeadlineExceededError,
    ResilienceError,
)
from ._filters import ErrorFilter
from ._retry import Attempt, Retrying, retry, retrying
from ._retry_policy import BackoffHook, RandomSource, RetryOn, Sleep, backoff_delay

__all__ = [
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
