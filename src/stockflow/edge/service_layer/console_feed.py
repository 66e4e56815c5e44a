"""The live console's feed: one gather per interval, shared by every connected stream.

While at least one stream listens, a single task asks the :class:`ConsoleSource` for a
snapshot every ``interval`` seconds (the staff part only while a staff stream listens) and
wakes every listener; with nobody listening nothing is scraped. :meth:`ConsoleFeed.close`
ends every stream at once (graceful shutdown must not wait for browsers to leave).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

__all__ = ["ConsoleFeed", "ConsoleSnapshot", "ConsoleSource"]

_log = structlog.get_logger("stockflow.edge.console")


@dataclass(frozen=True)
class ConsoleSnapshot:
    public: Mapping[str, Any]
    """What anyone may see: health, RED, breakers, bus and outbox backlogs."""
    staff: Mapping[str, Any] | None
    """Orders, stock, dead letters; ``None`` when no staff stream asked for them."""


class ConsoleSource(Protocol):
    async def gather(self, *, staff: bool) -> ConsoleSnapshot:
        """One snapshot of the system; never raises for a downstream that cannot answer."""
        ...


class ConsoleFeed:
    def __init__(self, source: ConsoleSource, *, interval: float = 1.0) -> None:
        self._source = source
        self._interval = interval
        self._listeners = 0
        self._staff_listeners = 0
        self._latest: ConsoleSnapshot | None = None
        self._fresh = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def listeners(self) -> int:
        return self._listeners

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def updates(self, *, staff: bool) -> AsyncIterator[dict[str, Any]]:
        """The views for one stream, one per gather, until :meth:`close` (or the caller stops
        iterating). A staff view has the staff part, another one never does."""
        if self.closed:
            return
        self._listeners += 1
        self._staff_listeners += staff
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="edge-console-feed")
        try:
            while not self.closed:
                fresh = self._fresh
                latest = self._latest
                if latest is not None and (not staff or latest.staff is not None):
                    yield _view(latest, staff=staff)
                await _first(fresh.wait(), self._closed.wait())
        finally:
            self._listeners -= 1
            self._staff_listeners -= staff

    async def _run(self) -> None:
        while self._listeners > 0 and not self.closed:
            try:
                self._latest = await self._source.gather(staff=self._staff_listeners > 0)
            except Exception as error:  # a bug in a gather must not end every stream
                _log.warning("edge.console_gather_failed", error=repr(error))
            fresh, self._fresh = self._fresh, asyncio.Event()
            fresh.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self._interval)

    def close_soon(self) -> None:
        """End every stream at its next step (no new one starts); the gather task stops."""
        self._closed.set()
        self._fresh.set()

    async def close(self) -> None:
        """End every stream and the gather task."""
        self.close_soon()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _view(snapshot: ConsoleSnapshot, *, staff: bool) -> dict[str, Any]:
    view: dict[str, Any] = {**snapshot.public, "view": "staff" if staff else "public"}
    if staff and snapshot.staff is not None:
        view |= snapshot.staff
    return view


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
