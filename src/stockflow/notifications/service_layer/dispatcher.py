"""The webhook dispatcher: sends queued deliveries, retries them, and gives up on them.

Each round claims the due deliveries (leased in a short transaction, so two dispatchers never
send one delivery at once and a crashed one's come back when the lease ends), then sends them
endpoint by endpoint: one endpoint's deliveries one at a time in order, up to *concurrency*
endpoints at once. One attempt is::

    SSRF rules (URL, then every resolved address) ─ breaker of the endpoint ─ timeout ─ POST

with the Standard Webhooks headers signed afresh (the ``webhook-id`` is the delivery's id,
the same on every retry). A 2xx delivers; anything else (another status, no answer, a refused
target) is a failed attempt, retried after ``uniform(0, min(backoff_max, backoff_initial *
2 ** (attempt - 1)))`` seconds (full jitter), until ``max_attempts`` failed: then the delivery
is dead (``notifications.webhook_delivery_dead``, a warning, and
``notifications_webhook_dead_deliveries_total{webhook}``). Every attempt is written to the
delivery log with its status or error and the time of the next one.

Each endpoint (webhook) has its own circuit breaker (the kit's, named ``webhook:<id>``): after
``breaker_failures`` failed attempts in a row it opens, and the endpoint's due deliveries are
put off until it lets a trial through, without spending their attempts; other endpoints are
not affected. A refused target is not the endpoint's failure and does not count for it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry

from stockflow.notifications.domain.model import Attempt, Delivery, Webhook, after_attempt
from stockflow.notifications.domain.targets import TargetPolicy, TargetRefusedError
from stockflow.notifications.service_layer.ports import (
    Queries,
    Resolver,
    Sender,
    SendFailedError,
    UnitOfWork,
)
from stockflow.notifications.service_layer.signing import signed_headers
from stockflow.notifications.service_layer.telemetry import NotificationsMetrics
from stockflow_kit.resilience import CircuitBreaker, CircuitOpenError, backoff_delay

__all__ = ["DeliveryPolicy", "Dispatcher", "FailedAnswerError"]

_log = structlog.get_logger("stockflow.notifications")
_MAX_ERROR = 500


class FailedAnswerError(Exception):
    """The endpoint answered, with a status that is not 2xx."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard the dispatcher tries (see the module docstring)."""

    max_attempts: int = 8
    backoff_initial: float = 1.0
    backoff_max: float = 3600.0
    timeout: float = 10.0
    batch_size: int = 100
    concurrency: int = 16
    breaker_failures: int = 5
    breaker_reset: float = 30.0
    poll: float = 1.0

    @property
    def lease(self) -> float:
        """How long a claimed delivery is kept from other dispatchers."""
        return self.timeout * 2 + 30.0


class Dispatcher:
    """Sends what the consumers queued; run :meth:`run` as a background task."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        queries: Queries,
        *,
        resolver: Resolver,
        sender: Sender,
        targets: TargetPolicy,
        policy: DeliveryPolicy,
        metrics: NotificationsMetrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.uow, self.queries = uow, queries
        self.resolver, self.sender, self.targets, self.policy = resolver, sender, targets, policy
        self.metrics, self.clock, self.monotonic = metrics, clock, monotonic
        self.rng = rng or random.Random()
        self.registry = registry
        self.breakers: dict[str, CircuitBreaker] = {}
        self._wake = asyncio.Event()
        self._in_hand: dict[str, Delivery] = {}

    def notify(self) -> None:
        """New deliveries are queued: start a round now rather than at the next poll."""
        self._wake.set()

    def breaker(self, webhook_id: str) -> CircuitBreaker:
        """The circuit breaker of one endpoint (made on first use)."""
        breaker = self.breakers.get(webhook_id)
        if breaker is None:
            breaker = CircuitBreaker(
                f"webhook:{webhook_id}",
                on=(SendFailedError, FailedAnswerError),
                failure_threshold=self.policy.breaker_failures,
                reset_timeout=self.policy.breaker_reset,
                clock=self.monotonic,
                registry=self.registry,
            )
            self.breakers[webhook_id] = breaker
        return breaker

    async def run(self) -> None:
        """Dispatch rounds until cancelled: at once while rounds come back full, else after
        :meth:`notify` or the poll interval."""
        while True:
            self._wake.clear()
            claimed = await self.dispatch_once()
            if claimed >= self.policy.batch_size:
                continue
            with suppress(TimeoutError):
                async with asyncio.timeout(self.policy.poll):
                    await self._wake.wait()

    async def dispatch_once(self) -> int:
        """One round: claim the due deliveries and try each once; return how many."""
        now = self.clock()
        async with self.uow() as uow:
            claimed = await uow.deliveries.claim(
                now=now, lease=self.policy.lease, limit=self.policy.batch_size
            )
            webhooks = {w.id: w for w in await uow.webhooks.live()} if claimed else {}
            await uow.commit()
        self._in_hand.update((d.id, d) for d in claimed)
        by_endpoint: dict[str, list[Delivery]] = {}
        for delivery in claimed:
            by_endpoint.setdefault(delivery.webhook_id, []).append(delivery)
        slots = asyncio.Semaphore(self.policy.concurrency)

        async def endpoint(webhook_id: str, deliveries: list[Delivery]) -> None:
            webhook = webhooks.get(webhook_id)
            if webhook is None:  # deleted since the claim: its deliveries are dead already
                for delivery in deliveries:
                    self._in_hand.pop(delivery.id, None)
                return
            async with slots:
                await self._send_all(webhook, deliveries)

        await asyncio.gather(*(endpoint(w, ds) for w, ds in by_endpoint.items()))
        self.metrics.backlog.set(await self.queries.backlog())
        return len(claimed)

    async def _send_all(self, webhook: Webhook, deliveries: Sequence[Delivery]) -> None:
        # A slow endpoint must not outlive the lease of what is still waiting: past this, the
        # rest is handed back (due now) for the next round rather than sent late.
        until = self.monotonic() + self.policy.lease - 2 * self.policy.timeout
        for index, delivery in enumerate(deliveries):
            if self.monotonic() > until:
                await self._reschedule(deliveries[index:], at=self.clock())
                return
            if not await self._attempt(webhook, delivery):
                # The breaker is open: try these again when it lets a trial through.
                wait = max(self.breaker(webhook.id).retry_after(), 0.05)
                await self._reschedule(deliveries[index:], at=self.clock() + wait)
                self.metrics.postponed.inc(len(deliveries) - index)
                return

    async def _reschedule(self, deliveries: Sequence[Delivery], *, at: float) -> None:
        """Make *deliveries* due at *at* without spending an attempt (ends their lease)."""
        async with self.uow() as uow:
            await uow.deliveries.reschedule([d.id for d in deliveries], at=at)
            await uow.commit()
        for delivery in deliveries:
            self._in_hand.pop(delivery.id, None)

    async def release(self) -> None:
        """Hand back what a stopped round had claimed and not settled (due now), so another
        dispatcher need not wait for the lease to end. Run it after :meth:`run` is stopped."""
        in_hand = list(self._in_hand.values())
        if in_hand:
            await self._reschedule(in_hand, at=self.clock())
            _log.info("notifications.deliveries_released", deliveries=len(in_hand))

    async def _attempt(self, webhook: Webhook, delivery: Delivery) -> bool:
        """Try *delivery* once and log the attempt; ``False`` when the breaker refused it."""
        breaker = self.breaker(webhook.id)
        if breaker.retry_after() > 0:
            return False
        started, at = self.monotonic(), self.clock()
        status: int | None = None
        error: str | None = None
        outcome = "failure"
        try:
            target = self.targets.check_url(webhook.url)
            addresses = await self.resolver.resolve(target.host, target.port)
            self.targets.check_addresses(target, addresses)
        except TargetRefusedError as refused:
            error, outcome = f"refused: {refused}", "refused"
        else:
            headers = signed_headers(webhook.secret, delivery.id, delivery.body, at=at)
            try:
                async with breaker:
                    status = await self.sender.send(
                        webhook.url,
                        address=addresses[0],
                        headers=headers,
                        body=delivery.body.encode(),
                        time_limit=self.policy.timeout,
                    )
                    if not 200 <= status < 300:
                        raise FailedAnswerError(status)
                outcome = "success"
            except CircuitOpenError:
                return False  # half-open, and its trial slot is taken
            except FailedAnswerError:
                pass  # the status says what went wrong
            except SendFailedError as failed:
                error = str(failed)[:_MAX_ERROR] or type(failed).__name__
        duration = self.monotonic() - started
        retry_in = backoff_delay(
            delivery.attempts + 1,
            initial=self.policy.backoff_initial,
            maximum=self.policy.backoff_max,
            exp_base=2,
            rng=self.rng,
        )
        now = self.clock()
        after = after_attempt(
            delivery,
            status,
            error,
            now=now,
            max_attempts=self.policy.max_attempts,
            retry_in=retry_in,
        )
        attempt = Attempt(
            delivery_id=delivery.id,
            number=after.attempts,
            at=at,
            duration=duration,
            status=status,
            error=error,
            next_attempt_at=after.next_attempt_at,
        )
        async with self.uow() as uow:
            await uow.deliveries.record(after, attempt)
            await uow.commit()
        self._in_hand.pop(delivery.id, None)
        self.metrics.attempts.labels(outcome).inc()
        self.metrics.attempt_seconds.observe(duration)
        self._settled(webhook, after)
        return True

    def _settled(self, webhook: Webhook, delivery: Delivery) -> None:
        if delivery.status == "delivered":
            self.metrics.deliveries.labels("delivered").inc()
        elif delivery.status == "dead":
            self.metrics.deliveries.labels("dead").inc()
            self.metrics.dead.labels(webhook.id).inc()
            _log.warning(
                "notifications.webhook_delivery_dead",
                webhook=webhook.id,
                delivery=delivery.id,
                event_type=delivery.event_type,
                attempts=delivery.attempts,
                last_status=delivery.last_status,
                last_error=delivery.last_error,
            )
        else:
            _log.info(
                "notifications.webhook_attempt_failed",
                webhook=webhook.id,
                delivery=delivery.id,
                attempt=delivery.attempts,
                status=delivery.last_status,
                error=delivery.last_error,
                retry_at=delivery.next_attempt_at,
            )
