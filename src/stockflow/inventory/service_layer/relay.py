"""The event relay: the event log is the outbox.

Reads the events after the named checkpoint ``"published"``, publishes each to
``inventory.events`` as an envelope whose id is the event id, and moves the checkpoint only
after the bus confirmed the batch. A crash in between republishes the same ids, which the bus
drops as duplicates (its dedupe window), so consumers see each event once per window and must
be idempotent beyond it anyway. An unreachable bus or event store is waited out (capped
exponential backoff) without ending the relay.

With several replicas (ADR 0005) each relays only the events of its own SKUs (``owns``) under
its own checkpoint (``checkpoint``, e.g. ``published/2/1``), so no event is published twice
by design; the position order is still global (commits lock the events table).

Each event keeps the trace context of the request or message that caused it
(``traceparent``), and is published in that trace (the kit's ``causes``): one order's trace
goes on through ``StockReserved`` to the services consuming it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Final

import msgspec
import structlog

from stockflow.contracts.inventory import SCHEMA_VERSION
from stockflow.contracts.inventory_commands import EVENTS_TOPIC
from stockflow.inventory.service_layer.ports import (
    EventStore,
    EventStoreUnavailableError,
    StoredEvent,
)
from stockflow_kit.messaging import Bus, Envelope, IdleWait, MessagingError
from stockflow_kit.resilience import Backoff

__all__ = ["PUBLISHED_CHECKPOINT", "EventRelay", "envelope_of"]

PUBLISHED_CHECKPOINT: Final = "published"
_log = structlog.get_logger("stockflow.inventory")


def envelope_of(event: StoredEvent) -> Envelope:
    return Envelope(
        id=str(event.event_id),
        type=event.type,
        schema_version=SCHEMA_VERSION,
        source="inventory",
        subject=event.stream_id,
        sequence=event.sequence,
        occurred_at=event.occurred_at,
        correlation_id=event.correlation_id,
        causation_id=event.causation_id,
        data=msgspec.json.decode(event.data),
    )


class EventRelay:
    """Publish committed events in batches of ``batch_size``; see the module docstring."""

    def __init__(
        self,
        store: EventStore,
        bus: Bus,
        *,
        wake: asyncio.Event | None = None,
        batch_size: int = 1000,
        idle_wait: float = 0.2,
        max_idle_wait: float = 5.0,
        owns: Callable[[str], bool] | None = None,
        checkpoint: str = PUBLISHED_CHECKPOINT,
    ) -> None:
        self.store = store
        self.bus = bus
        self.wake = wake or asyncio.Event()
        self.batch_size = batch_size
        self.idle = IdleWait(idle_wait, max_idle_wait)
        self.owns = owns
        self.checkpoint = checkpoint
        self.position = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="inventory-relay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def run(self) -> None:
        self.position = await self.store.checkpoint(self.checkpoint)
        failures = 0
        backoff = Backoff(base=0.1, cap=5.0)
        while True:
            self.wake.clear()
            try:
                published = await self.publish_once()
            except (MessagingError, EventStoreUnavailableError) as error:
                # The bus or the database is away: wait and go on from the checkpoint, which
                # moved only after a confirmed publish (republishing is deduped by the bus).
                failures += 1
                _log.warning(
                    "inventory.relay_publish_failed",
                    error_type=type(error).__name__,
                    error=str(error),
                    failures=failures,
                )
                await backoff.wait()
                continue
            except Exception as error:  # unexpected: logged loudly, but a dead relay is worse
                failures += 1
                _log.error(
                    "inventory.relay_failed",
                    error_type=type(error).__name__,
                    failures=failures,
                    exc_info=error,
                )
                await backoff.wait()
                continue
            failures = 0
            backoff.reset()
            if published:
                self.idle.found_work()
            if published < self.batch_size:
                # Woken by the writer's commits (``wake``); the timed wait is a safety net that
                # grows while nothing is committed (an idle relay reads the log every 5 s).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.idle.next())

    async def publish_once(self) -> int:
        """Publish the next batch of events; return how many."""
        events = await self.store.read_all(after_position=self.position, limit=self.batch_size)
        if not events:
            return 0
        owns = self.owns
        mine = events if owns is None else [e for e in events if owns(e.stream_id)]
        if mine:
            await self._publish(mine)
        self.position = events[-1].position
        await self.store.save_checkpoint(self.checkpoint, self.position)
        return len(events)

    async def _publish(self, events: Sequence[StoredEvent]) -> None:
        await self.bus.publish(
            EVENTS_TOPIC,
            [envelope_of(event) for event in events],
            causes=[event.traceparent for event in events],
        )
