"""Waking fetches that wait for messages published in the same process (both local buses)."""

from __future__ import annotations

import asyncio

__all__ = ["Wakeup"]


class Wakeup:
    """Fetches :meth:`wait`; publishers :meth:`wake` them all at once."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def wake(self) -> None:
        """Wake every waiting fetch."""
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
