"""Waking fetches that wait for new messages, instead of polling (both local buses).

A fetch that found nothing sleeps on :meth:`Wakeup.wait` until a publisher (or a nak, a
dead letter, the close of the bus, or the SQLite bus's watch of its file) calls
:meth:`Wakeup.wake`, or its own timer (``max_wait``, the next redelivery) runs out. The
:attr:`Wakeup.generation` tells a fetch whether anything happened since it last looked, so it
can skip a claim that would find nothing.
"""

from __future__ import annotations

import asyncio

__all__ = ["Wakeup"]


class Wakeup:
    """Fetches :meth:`wait`; publishers :meth:`wake` them all at once."""

    __slots__ = ("_generation", "_waiters")

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._generation = 0

    @property
    def generation(self) -> int:
        """How many times :meth:`wake` was called: unchanged means nothing happened."""
        return self._generation

    def wake(self) -> None:
        """Wake every waiting fetch."""
        self._generation += 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, seconds: float) -> bool:
        """Wait up to *seconds* for :meth:`wake`; tell whether it came."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            self._waiters.discard(waiter)
            return False
        return True
