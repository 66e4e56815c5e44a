"""``within(seconds, what)``: a deadline for one phase of a test that says which phase hung.

pytest-timeout only shows the main thread waiting in the event loop's ``select``; this names
the phase, and prints the stack of every asyncio task still pending, so a hang seen once in CI
can be read from its log.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["within"]


def pending_tasks() -> str:
    """The stacks of the running loop's pending tasks (the current one included)."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}: {task.get_coro()!r}", file=out)
        task.print_stack(file=out)
    return out.getvalue()


@asynccontextmanager
async def within(seconds: float, what: str) -> AsyncIterator[None]:
    """Fail with ``what`` and the pending tasks' stacks when the block takes over *seconds*."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        stacks = pending_tasks()
        raise AssertionError(f"{what} did not finish within {seconds:g} s:\n{stacks}") from None
