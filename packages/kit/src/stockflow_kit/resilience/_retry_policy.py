"""The retry policy: what to retry on, how long to wait, and the full-jitter backoff formula.

Kept apart from the loop in :mod:`._retry` so the pure parts can be read and tested alone.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeAlias

import stamina

from ._budget import RetryBudget
from ._clock import Clock
from ._filters import is_exception_type

__all__ = ["BackoffHook", "RandomSource", "RetryOn", "Sleep", "backoff_delay", "default_rng"]

BackoffHook: TypeAlias = Callable[[Exception], bool | float | dt.timedelta]
"""Decides on an exception: ``False`` no retry, ``True`` retry with backoff, a number: wait that."""
RetryOn: TypeAlias = type[Exception] | tuple[type[Exception], ...] | BackoffHook
"""What to retry on: an exception type, a tuple of them, or a :data:`BackoffHook`."""
Sleep: TypeAlias = Callable[[float], Awaitable[None]]
"""An async sleep taking seconds, like :func:`asyncio.sleep` (the default)."""


class RandomSource(Protocol):
    """Anything with ``random() -> float`` in ``[0, 1)``, like :class:`random.Random`."""

    def random(self) -> float: ...


def backoff_delay(
    attempt: int, *, initial: float, maximum: float, exp_base: float, rng: RandomSource
) -> float:
    """Return the full-jitter delay after failed attempt number *attempt* (1-based).

    The delay is ``uniform(0, min(maximum, initial * exp_base ** (attempt - 1)))``, computed
    as ``cap * rng.random()``; a cap too large for a float is *maximum*.

    Raises:
        ValueError: If *attempt* < 1.
    """
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    if initial <= 0 or maximum <= 0:
        return 0.0
    try:
        cap = min(maximum, initial * float(exp_base) ** (attempt - 1))
    except OverflowError:
        cap = maximum
    return cap * rng.random()


@functools.cache
def default_rng() -> random.Random:
    return random.Random()  # jitter, not cryptography: no need for SystemRandom


@dataclass(frozen=True, slots=True)
class Policy:
    """The validated settings of one retry decorator or loop (see :func:`.retry`)."""

    on: RetryOn
    attempts: int | None
    timeout: float | None
    wait_initial: float
    wait_max: float
    wait_exp_base: float
    budget: RetryBudget | None
    clock: Clock
    sleep: Sleep
    rng: RandomSource | None

    def __post_init__(self) -> None:
        on = self.on
        if isinstance(on, tuple):
            valid = all(is_exception_type(t) for t in on)
        else:
            valid = is_exception_type(on) if isinstance(on, type) else callable(on)
        if not valid:
            raise TypeError(f"on= must be Exception types or a backoff hook, got {on!r}")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts must be at least 1 (or None for no limit)")
        if self.timeout is not None and self.timeout < 0:
            raise ValueError("timeout must not be negative (or None for no limit)")
        if self.wait_initial < 0 or self.wait_max < 0 or self.wait_exp_base < 1:
            raise ValueError("need wait_initial >= 0, wait_max >= 0 and wait_exp_base >= 1")

    def delay(self, attempt: int, verdict: bool | float) -> float:
        """The wait after failed *attempt*: zero in test mode, else *verdict* or the backoff."""
        if stamina.is_testing():
            return 0.0
        if verdict is not True:
            return max(0.0, float(verdict))
        return backoff_delay(
            attempt,
            initial=self.wait_initial,
            maximum=self.wait_max,
            exp_base=self.wait_exp_base,
            rng=self.rng if self.rng is not None else default_rng(),
        )

    def judge(self, exc: Exception) -> bool | float:
        """``False``: do not retry; ``True``: retry with backoff; a number: retry after it."""
        on = self.on
        if isinstance(on, tuple | type):
            return isinstance(exc, on)
        verdict = on(exc)
        return verdict.total_seconds() if isinstance(verdict, dt.timedelta) else verdict
