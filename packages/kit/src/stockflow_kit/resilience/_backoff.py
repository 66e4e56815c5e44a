"""One jittered backoff for hand-written retry loops (reconnect, fetch, relay, restart)."""

from __future__ import annotations

import asyncio

from ._retry_policy import RandomSource, Sleep, backoff_delay, default_rng

__all__ = ["Backoff"]


class Backoff:
    """Exponential backoff with full jitter, for loops that retry on their own::

        backoff = Backoff(base=0.1, cap=5.0)
        while not stopping:
            try:
                await fetch()
            except MessagingError:
                await backoff.wait()  # sleeps, counts an attempt
                continue
            backoff.reset()  # after a success

    The *n*-th wait since the last :meth:`reset` (or since creation) is full jitter, the same
    formula as :func:`~stockflow_kit.resilience.retry`::

        delay_n = uniform(0, min(cap, base * exp_base ** (n - 1)))

    so with the defaults the first wait is up to 0.1 s, the sixth up to 3.2 s, and none more
    than 5 s. Unlike :func:`~stockflow_kit.resilience.retry`, a backoff ignores stamina's test
    mode: its loops run until stopped, and a zero delay would make a failing loop spin. Inject
    *sleep* (e.g. ``ManualClock.sleep``) in tests instead.

    Args:
        base: Cap of the first delay in seconds; ``0.1`` by default.
        cap: Cap of every delay in seconds; ``5.0`` by default.
        exp_base: Growth of the cap per attempt; ``2.0`` by default.
        sleep: The async sleep; :func:`asyncio.sleep` by default.
        rng: The source of jitter; a shared :class:`random.Random` by default.

    Raises:
        ValueError: If *base* or *cap* is negative, or *exp_base* is below 1.
    """

    __slots__ = ("_attempts", "_rng", "_sleep", "base", "cap", "exp_base")

    def __init__(
        self,
        base: float = 0.1,
        cap: float = 5.0,
        *,
        exp_base: float = 2.0,
        sleep: Sleep = asyncio.sleep,
        rng: RandomSource | None = None,
    ) -> None:
        if base < 0 or cap < 0 or exp_base < 1:
            raise ValueError("need base >= 0, cap >= 0 and exp_base >= 1")
        self.base, self.cap, self.exp_base = base, cap, exp_base
        self._sleep = sleep
        self._rng = rng
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """Waits since the last :meth:`reset` (or since creation)."""
        return self._attempts

    def next_delay(self) -> float:
        """Count an attempt and return its delay in seconds, without sleeping."""
        self._attempts += 1
        return backoff_delay(
            self._attempts,
            initial=self.base,
            maximum=self.cap,
            exp_base=self.exp_base,
            rng=self._rng if self._rng is not None else default_rng(),
        )

    async def wait(self) -> float:
        """Count an attempt, sleep its delay, and return the delay slept."""
        delay = self.next_delay()
        await self._sleep(delay)
        return delay

    def reset(self) -> None:
        """Start again from the first delay (call it after a success)."""
        self._attempts = 0

    def __repr__(self) -> str:
        return f"<Backoff base={self.base} cap={self.cap} attempts={self._attempts}>"
