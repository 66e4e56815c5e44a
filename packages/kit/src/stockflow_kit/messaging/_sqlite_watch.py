"""Noticing commits of other processes to the bus file, cheaply (SqliteLogBus).

Publishers in the same process wake waiting fetches directly (:class:`._wakeup.Wakeup`).
Commits by other processes (or other buses on the file) are noticed by one task per bus that
reads ``PRAGMA data_version`` on a connection of its own (about 2 µs; the value changes when
any other connection committed a change) and wakes every waiting fetch when it changed.

The interval between two reads grows with the time the file has been quiet, and snaps back
on a change (:class:`.idle.IdleWait`)::

    interval = min(max_poll_interval, max(poll_interval, quiet_seconds / 20))

so a message from another process waits at most about 5 % of the quiet time before it (and
never more than ``max_poll_interval``). With the defaults (5 ms, 0.5 s) a busy file is checked
every 5 ms, one quiet for 1 s every 50 ms, one quiet for 10 s or more twice a second.
Redeliveries do not depend on it: a waiting fetch wakes on its own when the next in-flight
delivery's ``ack_wait`` expires.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

import structlog

from stockflow_kit.messaging.idle import IdleWait

__all__ = ["DataVersionWatch"]

_log = structlog.get_logger("stockflow_kit.messaging")


class DataVersionWatch:
    """Call *on_change* whenever *conn* sees a commit by another connection.

    Args:
        conn: A connection used only by this watch.
        on_change: Called (on the event loop) after each observed change.
        poll_interval: The first and shortest interval between reads (seconds).
        max_poll_interval: The longest interval, reached after a while without change.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        on_change: Callable[[], None],
        *,
        poll_interval: float,
        max_poll_interval: float,
    ) -> None:
        self.conn, self.on_change = conn, on_change
        self._idle = IdleWait(poll_interval, max_poll_interval)
        self.poll_interval, self.max_poll_interval = self._idle.shortest, self._idle.longest
        self.reads = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (on the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sqlite-bus-watch")

    async def stop(self) -> None:
        """Stop watching; the connection is left open."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def interval(self, quiet_seconds: float) -> float:
        """The wait before the next read, after *quiet_seconds* without a change."""
        return self._idle.quiet_for(quiet_seconds)

    async def _run(self) -> None:
        idle = self._idle
        try:
            seen = self._version()
            idle.found_work()
            while True:
                await asyncio.sleep(idle.next())
                version = self._version()
                self.reads += 1
                if version != seen:
                    seen = version
                    idle.found_work()
                    self.on_change()
        except sqlite3.Error as error:
            # Without the version, assume a change every max_poll_interval: fetches then
            # claim (and report the file's errors themselves) instead of missing messages.
            _log.error("messaging.bus_watch_failed", error=str(error))
            while True:
                await asyncio.sleep(self.max_poll_interval)
                self.on_change()
