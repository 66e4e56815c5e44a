"""The outbox relay: publishes stored outbox records in order, then removes them.

See :mod:`stockflow_kit.messaging.outbox` for the pattern and the stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from itertools import groupby

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging.bus import Bus
from stockflow_kit.messaging.idle import IdleWait
from stockflow_kit.messaging.outbox import Outbox
from stockflow_kit.observability.metrics import counter, gauge
from stockflow_kit.resilience import Backoff

__all__ = ["OutboxRelay"]

_log = structlog.get_logger("stockflow_kit.messaging")


class OutboxRelay:
    """Publishes an outbox's records in order and removes them once the bus has them.

    Args:
        outbox: The store to drain.
        bus: A started bus.
        batch_size: Records per claim (published in as few calls as topics allow).
        poll_interval: Seconds to sleep when the outbox has just been emptied; :meth:`notify`
            wakes it at once, so this wait only catches rows nobody notified it of.
        max_poll_interval: The longest of those sleeps: the wait grows with the time the
            outbox has been empty (:class:`~stockflow_kit.messaging.idle.IdleWait`: 5 % of
            the quiet time), so an idle relay reads its table every few seconds, not five
            times a second. The backlog gauges are read after a round that relayed something,
            and otherwise at most every ``max_poll_interval``.
        registry: Prometheus registry for ``outbox_backlog`` / ``outbox_oldest_age_seconds``.
        backoff: The wait after a failed round (reset by the next good one); by default
            ``Backoff(base=0.05, cap=5.0)``: full jitter, up to 50 ms after the first failure,
            doubling up to 5 s.
    """

    def __init__(
        self,
        outbox: Outbox,
        bus: Bus,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        max_poll_interval: float = 5.0,
        registry: CollectorRegistry | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.outbox, self.bus = outbox, bus
        self.backoff = backoff if backoff is not None else Backoff(base=0.05, cap=5.0)
        self.batch_size, self.poll_interval = batch_size, poll_interval
        self.idle = IdleWait(poll_interval, max_poll_interval)
        self._backlog_due = 0.0
        self._backlog = gauge(
            "outbox_backlog", "Messages stored, not yet published.", ("outbox",), registry=registry
        ).labels(outbox.name)
        self._oldest = gauge(
            "outbox_oldest_age_seconds",
            "Age of the oldest unpublished message.",
            ("outbox",),
            registry=registry,
        ).labels(outbox.name)
        self._errors = counter(
            "outbox_relay_errors", "Failed relay rounds.", ("outbox",), registry=registry
        ).labels(outbox.name)
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._running = False

    async def relay_once(self) -> int:
        """Publish and remove up to ``batch_size`` records; return how many."""
        records = await self.outbox.claim(self.batch_size)
        for (topic, raw_headers), group in groupby(
            records, key=lambda r: (r.topic, tuple(sorted(r.headers.items())))
        ):
            headers = dict(raw_headers)
            token = otel_context.attach(propagate.extract(headers))
            try:
                await self.bus.publish(topic, [r.envelope for r in group], headers=headers)
            finally:
                otel_context.detach(token)
        if records:
            await self.outbox.remove(records)
        return len(records)

    async def record_backlog(self) -> None:
        """Update the backlog gauges."""
        count, age = await self.outbox.backlog()
        self._backlog.set(count)
        self._oldest.set(age)

    def notify(self) -> None:
        """Wake the relay now (call after committing new outbox rows)."""
        self.idle.found_work()
        self._wakeup.set()

    async def run(self) -> None:
        """Relay until :meth:`stop`; failures are logged, counted and retried with backoff."""
        self._stopping, self._running = False, True
        self._stopped.clear()
        try:
            await self._run()
        finally:
            self._running = False
            self._stopped.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                relayed = await self.relay_once()
                if relayed or time.monotonic() >= self._backlog_due:
                    await self.record_backlog()
                    self._backlog_due = time.monotonic() + self.idle.longest
                self.backoff.reset()
            except Exception as error:  # a failed round is retried; the rows stay stored
                self._errors.inc()
                _log.warning(
                    "messaging.outbox_relay_failed",
                    outbox=self.outbox.name,
                    error=repr(error),
                    attempt=self.backoff.attempts + 1,
                )
                await self.backoff.wait()
                continue
            if relayed:
                self.idle.found_work()
            if relayed < self.batch_size:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.idle.next())

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the current round, and wait until it has."""
        self._stopping = True
        self._wakeup.set()
        if self._running:
            await self._stopped.wait()
