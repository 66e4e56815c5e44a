"""The consumer runner: fetch a batch, handle it, ack it; or nak it so that nothing is lost.

::

    consumer = Consumer(await bus.subscribe("orders.events", "inventory"), handle_batch)
    task = asyncio.create_task(consumer.run())
    ...
    await consumer.stop()

A handler takes the whole batch (``Sequence[Delivery]``) and returns once its effect is
committed; the runner then acks the batch. If it raises, the runner naks the whole batch with
the exception as the reason, so it is redelivered and, after ``max_deliver`` attempts,
dead-lettered by the bus. Failures are logged (``messaging.handler_failed``) and counted
(``outcome="nakked"``), never swallowed. Wrap a per-message handler with :func:`per_message`
to get the correlation and causation ids of each envelope bound while it runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

import structlog
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging._telemetry import bus_metrics, consume_span
from stockflow_kit.messaging.bus import BusClosedError, Delivery, MessagingError, Subscription
from stockflow_kit.messaging.idle import IdleWait
from stockflow_kit.observability.correlation import bind_correlation, new_correlation_id
from stockflow_kit.resilience import Backoff

__all__ = ["BatchHandler", "Consumer", "MessageHandler", "per_message"]

BatchHandler: TypeAlias = Callable[[Sequence[Delivery]], Awaitable[None]]
"""Handles one fetched batch; returns only after its effect is committed."""

MessageHandler: TypeAlias = Callable[[Delivery], Awaitable[None]]
"""Handles one delivery."""

_log = structlog.get_logger("stockflow_kit.messaging")


def per_message(handler: MessageHandler) -> BatchHandler:
    """Turn a per-message *handler* into a batch handler that runs it for each delivery in order.

    While each delivery is handled, its envelope's ``correlation_id`` (or a new one) and, as
    causation id, the envelope's ``id`` are bound
    (:func:`~stockflow_kit.observability.correlation.bind_correlation`), so envelopes created
    by the handler carry them. A failure fails the whole batch (it is nakked and redelivered),
    so the handler must be idempotent (see :mod:`stockflow_kit.messaging.inbox`).
    """

    async def handle_batch(deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            envelope = delivery.envelope
            with bind_correlation(
                envelope.correlation_id or new_correlation_id(), causation_id=envelope.id
            ):
                await handler(delivery)

    return handle_batch


MAX_LOGGED_CORRELATION_IDS = 50
"""``messaging.batch_handled`` names at most this many ids (the rest are counted).

Under load a batch can hold a thousand messages; listing every id would make the line, and
its cost on the hot path, grow with the batch. A request followed with ``stockflow trace``
runs on a quiet system, or in a batch whose first 50 ids include it."""


def _log_handled(subscription: str, batch: Sequence[Delivery], seconds: float) -> None:
    """The line ``messaging.batch_handled``: one per batch, naming every correlation id in it
    (``correlation_ids``; also ``correlation_id`` when there is one), so a request's path
    through the consumers can be followed in the logs (``stockflow trace``)."""
    ids = list(dict.fromkeys(d.envelope.correlation_id for d in batch if d.envelope.correlation_id))
    extra: dict[str, object] = {"correlation_id": ids[0]} if len(ids) == 1 else {}
    if len(ids) > MAX_LOGGED_CORRELATION_IDS:  # a big batch under load: the line stays small
        extra["correlation_ids_omitted"] = len(ids) - MAX_LOGGED_CORRELATION_IDS
        ids = ids[:MAX_LOGGED_CORRELATION_IDS]
    _log.info(
        "messaging.batch_handled",
        subscription=subscription,
        messages=len(batch),
        types=sorted({d.envelope.type for d in batch}),
        correlation_ids=ids,
        duration_ms=round(seconds * 1000, 3),
        **extra,
    )


class Consumer:
    """Runs *handler* over batches of *subscription* until stopped.

    Args:
        subscription: A bound durable subscription.
        handler: Called with each non-empty batch; see :data:`BatchHandler`.
        batch_size: ``max_messages`` of each fetch.
        max_wait: ``max_wait`` of each fetch while messages flow; also how long :meth:`stop`
            may take to notice. Every backend's fetch returns at the first message, so a
            longer wait costs no latency, only wakeups while idle.
        idle_max_wait: The longest ``max_wait`` while nothing comes: after empty fetches the
            wait grows with the quiet time up to this (5 % of it, as
            :class:`~stockflow_kit.messaging.idle.IdleWait`), and snaps back to
            ``max_wait`` at the next message. By default ``max(max_wait, 0.5)``: an idle
            consumer fetches about twice a second, and :meth:`stop` answers within it.
        lag_interval: Seconds between updates of the lag gauges.
        retry_delay: The ``delay`` of the nak after a handler failure, so that a transient
            outage does not burn through ``max_deliver`` at once.
        registry: Prometheus registry for the metrics (the default registry when ``None``).
        tracer_provider: Where the per-batch CONSUMER spans go (the global provider if ``None``).
        backoff: The wait after a failed fetch (reset by the next good one); by default
            ``Backoff(base=0.1, cap=5.0)``: full jitter, up to 0.1 s after the first failure,
            doubling up to 5 s.
        max_in_flight: Batches being handled at once. With 1 (the default) the next fetch
            waits until the batch in hand is acked. With more, the runner fetches the next
            batch while earlier ones are still in the handler, so a pipelined handler (e.g. a
            writer that decides batch N+1 while N commits) never starves. Handlers are started
            in fetch order; each batch is acked or nakked on its own.

    The bus records each fetched batch's size (``messaging_batch_size``) and the ack, nak and
    redelivery counts; the runner adds ``messaging_handler_duration_seconds``, the lag gauges
    and one span per batch, linked to the producers' spans.
    """

    def __init__(
        self,
        subscription: Subscription,
        handler: BatchHandler,
        *,
        batch_size: int = 1000,
        max_wait: float = 0.5,
        idle_max_wait: float | None = None,
        lag_interval: float = 5.0,
        retry_delay: float = 1.0,
        registry: CollectorRegistry | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        max_in_flight: int = 1,
        backoff: Backoff | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.subscription = subscription
        self.handler = handler
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.idle = IdleWait(
            max_wait, max(max_wait, 0.5) if idle_max_wait is None else idle_max_wait
        )
        self.lag_interval = lag_interval
        self.retry_delay = retry_delay
        self.backoff = backoff if backoff is not None else Backoff(base=0.1, cap=5.0)
        self._metrics = bus_metrics(registry)
        self._tracer_provider = tracer_provider
        self._stopping = False
        self._stopped = asyncio.Event()
        self._running = False
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Consume until :meth:`stop` is called (or the bus is closed under it).

        Raises:
            BusClosedError: when the bus closes while the consumer was not asked to stop.
        """
        self._running, self._stopping = True, False
        self._stopped.clear()
        name = self.subscription.name
        next_lag = 0.0
        try:
            while not self._stopping:
                if time.monotonic() >= next_lag:
                    await self._record_lag()
                    next_lag = time.monotonic() + self.lag_interval
                await self._slots.acquire()
                try:
                    batch = await self.subscription.fetch(self.batch_size, self.idle.next())
                except BusClosedError:
                    self._slots.release()
                    if self.stopping:
                        return
                    raise
                except MessagingError as error:
                    self._slots.release()
                    _log.warning(
                        "messaging.fetch_failed",
                        subscription=name,
                        error=str(error),
                        attempt=self.backoff.attempts + 1,
                    )
                    await self.backoff.wait()
                    continue
                self.backoff.reset()
                if not batch:
                    self._slots.release()
                    continue
                self.idle.found_work()
                task = asyncio.create_task(self._handle_in_slot(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
        finally:
            if self._in_flight:  # let batches in hand finish: ack or nak, never abandon
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            self._running = False
            self._stopped.set()

    async def _handle_in_slot(self, batch: Sequence[Delivery]) -> None:
        try:
            await self.handle(batch)
        finally:
            self._slots.release()

    async def handle(self, batch: Sequence[Delivery]) -> None:
        """Handle one fetched *batch*: ack it on success, nak it on failure."""
        name = self.subscription.name
        with consume_span(name, batch, tracer_provider=self._tracer_provider) as span:
            started = time.perf_counter()
            try:
                await self.handler(batch)
            except Exception as error:  # any failure means: redeliver, never drop
                span.record_exception(error)
                reason = f"{type(error).__name__}: {error}"
                _log.error(
                    "messaging.handler_failed",
                    subscription=name,
                    batch_size=len(batch),
                    message_ids=[d.envelope.id for d in batch[:10]],
                    reason=reason,
                    exc_info=error,
                )
                await self._settle(
                    self.subscription.nak(batch, delay=self.retry_delay, reason=reason)
                )
            else:
                await self._settle(self.subscription.ack(batch))
                _log_handled(name, batch, time.perf_counter() - started)
            finally:
                self._metrics.handler_duration.labels(name).observe(time.perf_counter() - started)

    async def _settle(self, call: Awaitable[None]) -> None:
        try:
            await call
        except MessagingError as error:
            # The bus redelivers after ack_wait; idempotent handlers make that harmless.
            _log.warning(
                "messaging.settle_failed", subscription=self.subscription.name, error=str(error)
            )

    async def _record_lag(self) -> None:
        try:
            lag = await self.subscription.lag()
        except MessagingError as error:
            _log.warning(
                "messaging.lag_failed", subscription=self.subscription.name, error=str(error)
            )
            return
        self._metrics.record_lag(self.subscription.name, lag)

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    async def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand, and wait until it has."""
        self._stopping = True
        if self._running:
            await self._stopped.wait()
