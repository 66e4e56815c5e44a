"""An asyncio circuit breaker with an injectable clock (why our own: docs/adr/0002).

States and transitions::

    CLOSED ──(failure_threshold consecutive failures, or failure rate ≥ threshold)──▶ OPEN
    OPEN ──(reset_timeout elapsed; checked lazily at the next call or state read)──▶ HALF_OPEN
    HALF_OPEN ──(success_threshold trial successes)──▶ CLOSED
    HALF_OPEN ──(any trial failure)──▶ OPEN

Every outcome is classified once, when the call ends:

- *success*: it returned; resets the consecutive-failure count.
- *failure*: it raised an :class:`Exception` matching ``on=``.
- *ignored*: it raised something else (a 404 mapped to ``NotFound``, a validation error): the
  dependency answered, but not "healthy" either, so it counts as neither success nor failure.
  In half-open it gives its trial slot back without deciding anything.
- *cancelled*: :class:`asyncio.CancelledError`; never counted, and frees its trial slot.
  Note that a timeout *around* the breaker cancels the call inside it, so put
  ``asyncio.timeout`` inside ``async with breaker:`` and list :class:`TimeoutError` in ``on=``
  for timeouts to count.

A call's outcome only counts for the state it was admitted in: results of calls that were
admitted before the last transition are recorded in the metrics but change nothing.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import structlog
from prometheus_client import CollectorRegistry

from stockflow_kit.observability.metrics import counter, gauge

from ._clock import Clock
from ._errors import CircuitOpenError
from ._filters import ErrorFilter, error_matcher

__all__ = ["CircuitBreaker", "CircuitState"]

P = ParamSpec("P")
T = TypeVar("T")


class CircuitState(enum.Enum):
    """A breaker's state; the value is the label used in metrics and logs."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


@dataclass(frozen=True, slots=True)
class _Permit:
    generation: int
    trial: bool


class CircuitBreaker:
    """Stop calling a dependency that keeps failing, and probe it again after a pause.

    Use it as ``async with breaker:``, as ``await breaker.call(fn, *args)``, or as a
    decorator ``@breaker`` on an ``async def``. While open, calls fail fast with
    :class:`CircuitOpenError` and the dependency is not called at all.

    Metrics (in *registry*): gauge ``circuit_breaker_state{name}`` (0 closed, 1 half-open,
    2 open), counters ``circuit_breaker_transitions_total{name,from_state,to_state}`` and
    ``circuit_breaker_calls_total{name,outcome}`` (outcome: success, failure, ignored,
    cancelled, rejected). Each transition is logged as ``circuit_breaker.state_changed`` with
    ``name``, ``from`` and ``to`` (at warning level when it opens, info otherwise).

    Args:
        name: The dependency's name, for metrics, logs and :class:`CircuitOpenError`.
        on: The exceptions that count as failures (required, as with stamina).
        failure_threshold: Open after this many consecutive failures; ``5`` by default,
            ``None`` to trip on the failure rate only.
        failure_rate_threshold: Also open when ``failures / calls`` over the last
            *window_size* successes and failures reaches this fraction (``0 < rate <= 1``)
            when a failure is recorded and at least *minimum_calls* are in the window;
            ``None`` (the default) turns it off.
        minimum_calls: Calls needed before the rate is judged; ``10`` by default.
        window_size: Calls in the count-based sliding window; ``20`` by default.
        reset_timeout: Seconds open before trial calls are admitted; ``30.0`` by default.
        half_open_max_calls: Trial calls in flight at once while half-open; ``1`` by default.
        success_threshold: Trial successes needed to close again; ``1`` by default.
        clock: Monotonic seconds; :func:`time.monotonic` by default.
        registry: The Prometheus registry; the default registry when ``None``.

    Raises:
        ValueError: If a threshold or size is out of range or no trip condition is set.
        TypeError: If *on* is neither exception types nor a callable.
    """

    def __init__(
        self,
        name: str,
        *,
        on: ErrorFilter,
        failure_threshold: int | None = 5,
        failure_rate_threshold: float | None = None,
        minimum_calls: int = 10,
        window_size: int = 20,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        success_threshold: int = 1,
        clock: Clock = time.monotonic,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if failure_threshold is None and failure_rate_threshold is None:
            raise ValueError("set failure_threshold, failure_rate_threshold or both")
        if failure_threshold is not None and failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if failure_rate_threshold is not None and not 0 < failure_rate_threshold <= 1:
            raise ValueError("failure_rate_threshold must be in (0, 1]")
        if not 1 <= minimum_calls <= window_size:
            raise ValueError("need 1 <= minimum_calls <= window_size")
        if reset_timeout < 0 or half_open_max_calls < 1 or success_threshold < 1:
            raise ValueError(
                "need reset_timeout >= 0, half_open_max_calls >= 1, success_threshold >= 1"
            )
        self._name = name
        self._is_failure = error_matcher(on)
        self._failure_threshold = failure_threshold
        self._rate_threshold = failure_rate_threshold
        self._minimum_calls = minimum_calls
        self._reset_timeout = reset_timeout
        self._half_open_max_calls = half_open_max_calls
        self._success_threshold = success_threshold
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._consecutive_failures = 0
        self._window: deque[bool] = deque(maxlen=window_size)  # True = failure
        self._opened_at = 0.0
        self._trials = 0
        self._trial_successes = 0
        self._held: dict[asyncio.Task[Any] | None, list[_Permit]] = {}
        self._log = structlog.get_logger("stockflow_kit.resilience")
        self._state_gauge = gauge(
            "circuit_breaker_state", "0 closed, 1 half-open, 2 open.", ["name"], registry=registry
        ).labels(name=name)
        self._transitions = counter(
            "circuit_breaker_transitions",
            "Circuit breaker state transitions.",
            ["name", "from_state", "to_state"],
            registry=registry,
        )
        self._calls = counter(
            "circuit_breaker_calls", "Calls by outcome.", ["name", "outcome"], registry=registry
        )
        self._state_gauge.set(0)

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self._name

    @property
    def state(self) -> CircuitState:
        """The current state; reading it moves an expired OPEN to HALF_OPEN."""
        if self._state is CircuitState.OPEN and self.retry_after() == 0:
            self._transition(CircuitState.HALF_OPEN)
        return self._state

    def retry_after(self) -> float:
        """Return seconds until an open breaker admits a trial call; ``0.0`` if not open."""
        if self._state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._reset_timeout - self._clock())

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker and return its result.

        Raises:
            CircuitOpenError: If the breaker is open (or half-open with all trial slots
                taken); *fn* is not called.
        """
        permit = self._acquire()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._release(permit, exc)
            raise
        self._release(permit, None)
        return result

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Decorate an ``async def`` so that every call goes through :meth:`call`."""

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return guarded

    async def __aenter__(self) -> None:
        permit = self._acquire()
        self._held.setdefault(asyncio.current_task(), []).append(permit)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task = asyncio.current_task()
        permits = self._held[task]
        permit = permits.pop()
        if not permits:
            del self._held[task]
        self._release(permit, exc)

    def _acquire(self) -> _Permit:
        state = self.state
        if state is CircuitState.CLOSED:
            return _Permit(self._generation, trial=False)
        if state is CircuitState.HALF_OPEN and self._trials < self._half_open_max_calls:
            self._trials += 1
            return _Permit(self._generation, trial=True)
        self._calls.labels(name=self._name, outcome="rejected").inc()
        raise CircuitOpenError(self._name, self.retry_after())

    def _release(self, permit: _Permit, exc: BaseException | None) -> None:
        if exc is None:
            outcome = "success"
        elif isinstance(exc, asyncio.CancelledError):
            outcome = "cancelled"
        elif isinstance(exc, Exception) and self._is_failure(exc):
            outcome = "failure"
        else:
            outcome = "ignored"
        self._calls.labels(name=self._name, outcome=outcome).inc()
        if permit.generation != self._generation:
            return  # admitted before the last transition: its news is stale
        if permit.trial:
            self._trials -= 1
        if outcome == "success":
            self._record_success()
        elif outcome == "failure":
            self._record_failure()

    def _record_success(self) -> None:
        if self._state is CircuitState.HALF_OPEN:
            self._trial_successes += 1
            if self._trial_successes >= self._success_threshold:
                self._transition(CircuitState.CLOSED)
            return
        self._consecutive_failures = 0
        self._window.append(False)

    def _record_failure(self) -> None:
        if self._state is CircuitState.HALF_OPEN:
            self._transition(CircuitState.OPEN)
            return
        self._consecutive_failures += 1
        self._window.append(True)
        if self._tripped():
            self._transition(CircuitState.OPEN)

    def _tripped(self) -> bool:
        threshold = self._failure_threshold
        if threshold is not None and self._consecutive_failures >= threshold:
            return True
        if self._rate_threshold is None or len(self._window) < self._minimum_calls:
            return False
        return sum(self._window) / len(self._window) >= self._rate_threshold

    def _transition(self, to: CircuitState) -> None:
        before = self._state
        self._state = to
        self._generation += 1
        self._consecutive_failures = 0
        self._window.clear()
        self._trials = 0
        self._trial_successes = 0
        if to is CircuitState.OPEN:
            self._opened_at = self._clock()
        self._state_gauge.set(_GAUGE[to])
        self._transitions.labels(name=self._name, from_state=before.value, to_state=to.value).inc()
        log = self._log.warning if to is CircuitState.OPEN else self._log.info
        log(
            "circuit_breaker.state_changed",
            **{"name": self._name, "from": before.value, "to": to.value},
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._name!r} state={self._state.value}>"
