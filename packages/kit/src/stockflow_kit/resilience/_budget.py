"""A retry budget: retries may add at most a fixed fraction of extra load to a dependency.

Per-call retry limits multiply under failure: with 3 attempts, every caller triples its load
on a dependency that is already struggling. A budget, as in Finagle's ``RetryBudget`` and
gRPC's retry throttling, caps retries across *all* calls to one dependency instead.
"""

from __future__ import annotations

import math
import time
from collections import deque

from prometheus_client import CollectorRegistry

from stockflow_kit.observability.metrics import counter

from ._clock import Clock

__all__ = ["RetryBudget"]

_SLICES = 10


class RetryBudget:
    """Allow retries only up to *ratio* of recent requests, plus a small floor.

    Call :meth:`record_request` once per first attempt and :meth:`try_acquire_retry` before
    each retry (the retry helpers do both when given a budget). Over the last *window*
    seconds, a retry is allowed while::

        retries < ratio * requests + min_retries_per_second * window

    With the defaults (Finagle's) that is 20 % extra load plus 100 retries per 10 s, so a
    quiet service can still retry while a dependency that fails every call sees at most 1.2x
    its normal traffic instead of *attempts* times it.

    The window is kept in 10 slices of ``window / 10`` seconds, so memory is constant and an
    event leaves the window between ``0.9 * window`` and ``window`` seconds after it happened.

    Args:
        name: Label value for the metrics, e.g. the dependency's name.
        ratio: Retries allowed per request in the window; ``0.2`` by default.
        min_retries_per_second: The floor, in retries per second of window; ``10.0`` by
            default. ``0`` makes the budget purely proportional.
        window: Seconds of history that count; ``10.0`` by default.
        clock: Monotonic seconds; :func:`time.monotonic` by default.
        registry: Where the counter ``retry_budget_denied_total{name}`` lives; the default
            registry when ``None``.

    Raises:
        ValueError: If *ratio* or *min_retries_per_second* is negative or *window* is not
            positive.
    """

    __slots__ = ("_clock", "_denied", "_floor", "_name", "_ratio", "_slice", "_slices")

    def __init__(
        self,
        name: str = "default",
        *,
        ratio: float = 0.2,
        min_retries_per_second: float = 10.0,
        window: float = 10.0,
        clock: Clock = time.monotonic,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if ratio < 0 or min_retries_per_second < 0:
            msg = "ratio and min_retries_per_second must not be negative"
            raise ValueError(msg)
        if not window > 0:
            msg = "window must be a positive number of seconds"
            raise ValueError(msg)
        self._name = name
        self._ratio = ratio
        self._floor = min_retries_per_second * window
        self._slice = window / _SLICES
        self._clock = clock
        # Each entry: [slice index, requests, retries]; oldest first.
        self._slices: deque[list[int]] = deque()
        self._denied = counter(
            "retry_budget_denied",
            "Retries refused because the retry budget was spent.",
            ["name"],
            registry=registry,
        ).labels(name=name)

    @property
    def name(self) -> str:
        """The budget's name, as used in the metric label."""
        return self._name

    @property
    def requests(self) -> int:
        """First attempts recorded in the window."""
        return sum(entry[1] for entry in self._current_slices())

    @property
    def retries(self) -> int:
        """Retries granted in the window."""
        return sum(entry[2] for entry in self._current_slices())

    def available(self) -> int:
        """Return how many more retries the budget allows right now (never negative)."""
        allowed = math.floor(self._ratio * self.requests + self._floor + 1e-9)
        return max(0, allowed - self.retries)

    def record_request(self) -> None:
        """Record a first attempt (not a retry); each one earns *ratio* of a retry."""
        self._current_slices()[-1][1] += 1

    def can_retry(self) -> bool:
        """Return whether a retry would be allowed now, without spending it."""
        return self.available() > 0

    def try_acquire_retry(self) -> bool:
        """Spend one retry if the budget allows it.

        Returns:
            ``True`` if the retry may go ahead (and was recorded); ``False`` if the budget is
            spent, which also increments ``retry_budget_denied_total``.
        """
        if not self.can_retry():
            self._denied.inc()
            return False
        self._current_slices()[-1][2] += 1
        return True

    def _current_slices(self) -> deque[list[int]]:
        """Drop slices that left the window and make sure the newest one is the current."""
        index = math.floor(self._clock() / self._slice)
        while self._slices and self._slices[0][0] <= index - _SLICES:
            self._slices.popleft()
        if not self._slices or self._slices[-1][0] != index:
            self._slices.append([index, 0, 0])
        return self._slices

    def __repr__(self) -> str:
        return f"<RetryBudget {self._name!r} requests={self.requests} retries={self.retries}>"
