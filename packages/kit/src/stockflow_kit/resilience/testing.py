"""Helpers for testing code that uses :mod:`stockflow_kit.resilience`, without sleeping.

- :func:`set_testing` turns retry delays off (for stockflow's retries and stamina's alike).
- :class:`ManualClock` is a clock for breakers, budgets, deadlines and retries that moves only
  when a test says so; its :meth:`~ManualClock.sleep` can stand in for :func:`asyncio.sleep`.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager

import stamina

__all__ = ["ManualClock", "is_testing", "set_testing"]


def set_testing(on: bool = True, *, attempts: int = 3) -> AbstractContextManager[None]:
    """Turn test mode on or off; usable as a context manager that restores the old mode.

    In test mode every retry delay is zero. Retries made with
    :func:`stockflow_kit.resilience.retry` / :func:`~stockflow_kit.resilience.retrying` keep
    their configured attempts, budget and deadline; plain :func:`stamina.retry` calls are
    capped at *attempts* (stamina's ``cap=True``). The mode is stamina's own, so
    ``stamina.set_testing`` and this function switch the same thing.

    Args:
        on: ``True`` to turn test mode on, ``False`` to turn it off.
        attempts: Cap for plain stamina retries in test mode; ``3`` by default.
    """
    return stamina.set_testing(on, attempts=attempts, cap=True)


def is_testing() -> bool:
    """Return whether test mode is on."""
    return stamina.is_testing()


class ManualClock:
    """A monotonic clock that only moves when told to.

    Call it for the time (it is a :data:`~stockflow_kit.resilience.Clock`), move it with
    :meth:`advance`, or pass :meth:`sleep` wherever an async sleep is expected.

    Args:
        start: The initial reading in seconds; ``0.0`` by default.
    """

    __slots__ = ("_now", "sleeps")

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self.sleeps: list[float] = []
        """Every duration passed to :meth:`sleep`, in order."""

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by *seconds*.

        Raises:
            ValueError: If *seconds* is negative: monotonic clocks do not go back.
        """
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record *seconds*, advance the clock by it, and yield to the event loop once."""
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"<ManualClock now={self._now}>"
