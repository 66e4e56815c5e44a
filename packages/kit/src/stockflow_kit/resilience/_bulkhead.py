"""A bulkhead: a bounded number of concurrent calls to one dependency, with a bounded queue.

One slow dependency must not tie up every task (and every connection) of a service. A
bulkhead per dependency caps the calls in flight; callers beyond the cap wait in a FIFO queue
for a short while and are then turned away with :class:`BulkheadFullError`, which is cheap to
map to a 503 or to a fallback.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from prometheus_client import CollectorRegistry

from stockflow_kit.observability.metrics import counter, gauge

from ._errors import BulkheadFullError, BulkheadRejection

__all__ = ["Bulkhead"]


class Bulkhead:
    """Allow at most *max_concurrent* calls at once; queue up to *max_queue* more.

    Use it as ``async with bulkhead:``. A caller gets a slot at once if one is free and nobody
    is queued; otherwise it queues (first in, first out) for at most *queue_timeout* seconds.
    A freed slot is handed straight to the oldest waiter, so newcomers cannot overtake it.

    Metrics (in *registry*): gauges ``bulkhead_in_use{name}`` and ``bulkhead_queued{name}``,
    and the counter ``bulkhead_rejections_total{name,reason}`` (reason ``queue_full`` or
    ``queue_timeout``).

    Args:
        name: The dependency's name, for metrics and :class:`BulkheadFullError`.
        max_concurrent: Calls allowed in flight at once (at least 1).
        max_queue: Callers allowed to wait for a slot; ``None`` (the default) for no limit
            other than *queue_timeout*, ``0`` to never wait.
        queue_timeout: Seconds a caller may wait for a slot; ``1.0`` by default.
        registry: The Prometheus registry; the default registry when ``None``.

    Raises:
        ValueError: If *max_concurrent* < 1, *max_queue* < 0 or *queue_timeout* < 0.
    """

    __slots__ = (
        "_in_use",
        "_in_use_gauge",
        "_max_concurrent",
        "_max_queue",
        "_name",
        "_queue_timeout",
        "_queued_gauge",
        "_rejections",
        "_waiters",
    )

    def __init__(
        self,
        name: str,
        *,
        max_concurrent: int,
        max_queue: int | None = None,
        queue_timeout: float = 1.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if (max_queue is not None and max_queue < 0) or queue_timeout < 0:
            raise ValueError("max_queue and queue_timeout must not be negative")
        self._name = name
        self._max_concurrent = max_concurrent
        self._max_queue = max_queue
        self._queue_timeout = queue_timeout
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._in_use_gauge = gauge(
            "bulkhead_in_use", "Calls in flight through a bulkhead.", ["name"], registry=registry
        ).labels(name=name)
        self._queued_gauge = gauge(
            "bulkhead_queued", "Callers waiting for a bulkhead slot.", ["name"], registry=registry
        ).labels(name=name)
        self._rejections = counter(
            "bulkhead_rejections",
            "Calls turned away by a bulkhead.",
            ["name", "reason"],
            registry=registry,
        )
        self._publish()

    @property
    def name(self) -> str:
        """The bulkhead's name."""
        return self._name

    @property
    def in_use(self) -> int:
        """Slots taken right now."""
        return self._in_use

    @property
    def queued(self) -> int:
        """Callers waiting for a slot right now."""
        return len(self._waiters)

    async def __aenter__(self) -> None:
        if self._in_use < self._max_concurrent and not self._waiters:
            self._in_use += 1
            self._publish()
            return
        if self._max_queue is not None and len(self._waiters) >= self._max_queue:
            self._reject("queue_full")
        slot = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        self._publish()
        timed_out = False
        try:
            async with asyncio.timeout(self._queue_timeout):
                await slot
        except TimeoutError:
            # If the slot arrived together with the timeout, keep it and go ahead.
            timed_out = not self._granted(slot)
        except BaseException:
            if self._granted(slot):
                self._release()
            raise
        finally:
            if slot in self._waiters:
                self._waiters.remove(slot)
            self._publish()
        if timed_out:
            self._reject("queue_timeout")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._release()
        self._publish()

    @staticmethod
    def _granted(slot: asyncio.Future[None]) -> bool:
        return slot.done() and not slot.cancelled()

    def _release(self) -> None:
        while self._waiters:
            slot = self._waiters.popleft()
            if not slot.done():
                slot.set_result(None)  # hand the slot over: _in_use stays the same
                return
        self._in_use -= 1

    def _reject(self, reason: BulkheadRejection) -> None:
        self._rejections.labels(name=self._name, reason=reason).inc()
        raise BulkheadFullError(self._name, reason)

    def _publish(self) -> None:
        self._in_use_gauge.set(self._in_use)
        self._queued_gauge.set(len(self._waiters))

    def __repr__(self) -> str:
        return f"<Bulkhead {self._name!r} in_use={self._in_use} queued={len(self._waiters)}>"
