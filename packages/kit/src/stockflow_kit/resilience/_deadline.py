"""Deadlines: one point in time by which a piece of work must be done, passed down the calls.

A :class:`Deadline` is fixed when a request arrives (or when a caller decides how long it will
wait) and shrinks by itself as time passes. Every downstream call asks it for a timeout
(:meth:`Deadline.timeout`), retries never sleep past it, and the remaining budget travels to
the next service in the :data:`DEADLINE_HEADER` header, so a caller that has given up does not
leave work running behind it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._clock import Clock
from ._errors import DeadlineExceededError

__all__ = [
    "DEADLINE_HEADER",
    "Deadline",
    "current_deadline",
    "format_deadline_header",
    "parse_deadline_header",
]

DEADLINE_HEADER = "X-Request-Deadline-Ms"
"""The HTTP header carrying the caller's remaining budget in whole milliseconds, e.g. ``"1500"``."""

_MAX_HEADER_DIGITS = 12  # ~31 years in milliseconds; longer values are garbage, not budgets

_current: ContextVar[Deadline | None] = ContextVar("stockflow_deadline", default=None)


class Deadline:
    """A point in time, *seconds* from now on *clock*, by which work must be done.

    Args:
        seconds: How long from now; zero or negative gives an already expired deadline.
        clock: Monotonic seconds; :func:`time.monotonic` by default.

    Raises:
        ValueError: If *seconds* is NaN.
    """

    __slots__ = ("_clock", "_expires_at")

    def __init__(self, seconds: float, *, clock: Clock = time.monotonic) -> None:
        if math.isnan(seconds):
            msg = "a deadline needs a number of seconds, not NaN"
            raise ValueError(msg)
        self._clock = clock
        self._expires_at = clock() + seconds

    @classmethod
    def after(cls, seconds: float, *, clock: Clock = time.monotonic) -> Deadline:
        """Return a deadline *seconds* from now; the same as ``Deadline(seconds)``, read aloud."""
        return cls(seconds, clock=clock)

    @property
    def expires_at(self) -> float:
        """The deadline as a reading of its clock."""
        return self._expires_at

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed (the remaining time is zero)."""
        return self._clock() >= self._expires_at

    def remaining(self) -> float:
        """Return the seconds left, never negative: ``max(0, expires_at - clock())``."""
        return max(0.0, self._expires_at - self._clock())

    def timeout(self, per_attempt: float | None = None) -> float:
        """Return the timeout for the next attempt: ``min(per_attempt, remaining())``.

        Args:
            per_attempt: The attempt's own limit in seconds; ``None`` means only the deadline.
        """
        remaining = self.remaining()
        return remaining if per_attempt is None else min(per_attempt, remaining)

    def check(self) -> None:
        """Do nothing while time remains.

        Raises:
            DeadlineExceededError: If the deadline has passed.
        """
        if self.expired:
            raise DeadlineExceededError(
                f"deadline passed {self._clock() - self._expires_at:.3f}s ago"
            )

    @contextmanager
    def bind(self) -> Iterator[Deadline]:
        """Make this deadline :func:`current_deadline` for the block (and tasks started in it).

        A deadline only shrinks on its way down: if a tighter one is already bound, that one
        stays current. The bound deadline is yielded, and the previous one is restored after.
        """
        outer = _current.get()
        bound = outer if outer is not None and outer.remaining() <= self.remaining() else self
        token = _current.set(bound)
        try:
            yield bound
        finally:
            _current.reset(token)

    def __repr__(self) -> str:
        return f"<Deadline remaining={self.remaining():.3f}s>"


def current_deadline() -> Deadline | None:
    """Return the deadline bound with :meth:`Deadline.bind` in this context, or ``None``."""
    return _current.get()


def format_deadline_header(deadline: Deadline) -> str:
    """Return the :data:`DEADLINE_HEADER` value for *deadline*: its remaining whole milliseconds.

    The value is rounded down (``floor(remaining() * 1000)``), so the callee never believes it
    has more time than the caller will wait; an expired deadline gives ``"0"``.
    """
    # The nanosecond of slack absorbs float error: 7.002 - 7.0 is 1.9999…e-3, not 2e-3.
    return str(math.floor(deadline.remaining() * 1000 + 1e-6))


def parse_deadline_header(
    value: str | None, *, clock: Clock = time.monotonic, max_seconds: float | None = None
) -> Deadline | None:
    """Turn a received :data:`DEADLINE_HEADER` value into a :class:`Deadline` on *clock*.

    Args:
        value: The header value (remaining milliseconds), or ``None`` if it was absent.
        clock: The clock for the new deadline; :func:`time.monotonic` by default.
        max_seconds: An upper bound a server puts on a client's budget; ``None`` for none.

    Returns:
        A deadline ``min(value / 1000, max_seconds)`` seconds from now, or ``None`` if *value*
        is ``None`` or empty.

    Raises:
        ValueError: If *value* is not a non-negative whole number of at most 12 digits.
    """
    if value is None or not value.strip():
        return None
    digits = value.strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_HEADER_DIGITS:
        msg = f"{DEADLINE_HEADER} must be whole milliseconds, got {value!r}"
        raise ValueError(msg)
    seconds = int(digits) / 1000
    if max_seconds is not None:
        seconds = min(seconds, max_seconds)
    return Deadline(seconds, clock=clock)
