"""How long a loop that is woken on new work waits before looking anyway, when there is none.

Consumers, outbox relays and file watches are woken directly when work arrives (a publish, a
commit, a ``notify``), so their timed wait is only a safety net: for a stop to be seen, for a
redelivery or a commit by another process. Waking every few milliseconds while nothing
happens costs an idle process a noticeable share of a core (issue: the idle cost), so the
wait grows with the time since the loop last found work, and snaps back when it finds some::

    wait = min(longest, max(shortest, quiet_seconds / 20))

A loop quiet for 1 s waits 50 ms, one quiet for 10 s 0.5 s; work that arrives without a wake
waits at most about 5 % of the quiet time before it (and never more than ``longest``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["IdleWait"]


class IdleWait:
    """The safety-net wait of one loop: ``shortest`` while busy, growing to ``longest``.

    Args:
        shortest: The wait right after the loop found work (seconds).
        longest: The longest wait, reached after ``20 * longest`` seconds without work.
        clock: A monotonic clock (seconds).
    """

    __slots__ = ("_clock", "_found_at", "longest", "shortest")

    def __init__(
        self, shortest: float, longest: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if shortest <= 0:
            raise ValueError("shortest must be positive")
        self.shortest = shortest
        self.longest = max(longest, shortest)
        self._clock = clock
        self._found_at = clock()

    def found_work(self) -> None:
        """The loop found work: the next wait is ``shortest`` again."""
        self._found_at = self._clock()

    def quiet_for(self, seconds: float) -> float:
        """The wait after *seconds* without work."""
        return min(self.longest, max(self.shortest, seconds / 20))

    def next(self) -> float:
        """The wait before the loop looks again, given how long it has been quiet."""
        return self.quiet_for(self._clock() - self._found_at)
