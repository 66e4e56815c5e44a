"""Waiting for a benchmark's system under test to finish its work: poll a count until it
reaches the total, report progress now and then, and give up when the count stops moving."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["STALL_SECONDS", "wait_for_count"]

STALL_SECONDS: Final = 60.0
"""How long a count may stand still before the wait gives up (the process is stuck)."""


async def wait_for_count(
    count: Callable[[], Awaitable[int]],
    total: int,
    *,
    stalled: Callable[[int], str],
    report: Callable[[int], None] = lambda _count: None,
    report_every: float = 1.0,
    every: float = 0.2,
    stall_seconds: float = STALL_SECONDS,
) -> float:
    """Poll ``count()`` every *every* s until it reaches *total*; return when it did.

    *report* is called with the count at most every *report_every* s while waiting.

    Raises:
        RuntimeError: with ``stalled(count)`` when the count did not change for
            *stall_seconds*.
    """
    last_count, last_progress, last_report = -1, time.time(), 0.0
    while True:
        current = await count()
        now = time.time()
        if current >= total:
            return now
        if current != last_count:
            last_count, last_progress = current, now
        elif now - last_progress > stall_seconds:
            raise RuntimeError(stalled(current))
        if now - last_report >= report_every:
            report(current)
            last_report = now
        await asyncio.sleep(every)
