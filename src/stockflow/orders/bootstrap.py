"""The orders service's composition root: ``build(settings, *, bus)`` wires the database, the
unit of work, the use cases, the outbox relay, the consumer of the inventory's events, the
saga timer and the HTTP app; :data:`SPEC` declares the service to the platform. Nothing starts
here; :meth:`OrdersService.start` does (the platform runner calls it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from stockflow.orders.adapters.orm import IDEMPOTENCY, INBOX, MIGRATIONS, OUTBOX
from stockflow.orders.adapters.unit_of_work import OrdersUnitOfWork, SqlOrderQueries
from stockflow.orders.entrypoints.consumers import SOURCES
from stockflow.orders.entrypoints.http import create_app
from stockflow.orders.service_layer.handlers import InventoryFact, OrderHandlers
from stockflow.orders.settings import OrdersSettings
from stockflow.platform.spec import ServiceSpec
from stockflow.platform.sql import Database, database_component, database_for
from stockflow_kit.http.sqlalchemy import SqlAlchemyIdempotencyStore
from stockflow_kit.lifecycle import BackgroundTask, Lifecycle, Periodic
from stockflow_kit.messaging import Bus, ConsumerConfig, Consumers, OutboxRelay
from stockflow_kit.messaging.sqlalchemy import SqlAlchemyInbox, SqlAlchemyOutbox

__all__ = ["SPEC", "OrdersService", "build"]

_log = structlog.get_logger("stockflow.orders")


@dataclass(eq=False)
class OrdersService:
    """One orders process. The lifecycle starts, in order: the database (migrated to the newest
    schema), the outbox relay, the consumer, the saga timer and the pruner; it stops them in
    reverse, so the consumer settles its batch before the database goes away."""

    settings: OrdersSettings
    database: Database
    handlers: OrderHandlers
    queries: SqlOrderQueries
    relay: OutboxRelay
    consumers: Consumers[InventoryFact]
    inbox: SqlAlchemyInbox
    answers: SqlAlchemyIdempotencyStore
    registry: CollectorRegistry
    clock: Callable[[], float]
    app: FastAPI = field(init=False)
    lifecycle: Lifecycle = field(init=False)

    def __post_init__(self) -> None:
        retention = self.settings.processed_retention_seconds
        self.lifecycle = Lifecycle(
            [
                database_component(self.database, MIGRATIONS, opened=self.answers.start),
                self.handlers.placements,
                BackgroundTask("outbox relay", self.relay.run, registry=self.registry),
                self.consumers,
                Periodic(
                    "saga timer",
                    self._expire,
                    interval=self.settings.saga_check_seconds,
                    run_at_start=True,
                    registry=self.registry,
                ),
                Periodic(
                    "pruner", self._prune, interval=min(3600.0, retention), registry=self.registry
                ),
            ],
            name="orders",
        )

    async def start(self) -> None:
        await self.lifecycle.start()
        _log.info("orders.started", port=self.settings.port, database=self.database.dialect)

    async def stop(self) -> None:
        if self.lifecycle.started:
            await self.lifecycle.stop()
            _log.info("orders.stopped")

    async def readiness(self) -> str | None:
        return await self.lifecycle.readiness()

    async def _expire(self) -> None:
        await self.handlers.expire()
        oldest = await self.queries.pending_oldest()
        age = 0.0 if oldest is None else max(self.clock() - oldest, 0.0)
        self.handlers.metrics.pending_oldest_age.set(age)

    async def _prune(self) -> None:
        """Forget processed ids and Idempotency-Key answers past their windows."""
        now = self.clock()
        async with self.database.writer.begin() as connection:
            processed = await self.inbox.purge(
                connection, self.settings.processed_retention_seconds, now=now
            )
        answers = await self.answers.prune(now - self.settings.idempotency_retention_seconds)
        _log.info("orders.pruned", processed_ids=processed, idempotency_records=answers)


def build(
    settings: OrdersSettings,
    *,
    bus: Bus,
    clock: Callable[[], float] = time.time,
    registry: CollectorRegistry | None = None,
) -> OrdersService:
    """Wire one orders service. ``bus`` is started and closed by the caller."""
    registry = registry or CollectorRegistry()
    database = database_for(settings.database_url, name="orders")
    outbox = SqlAlchemyOutbox(database.writer, OUTBOX, name="orders", reader=database.reader)
    inbox = SqlAlchemyInbox(INBOX, name="orders-inventory", registry=registry)
    answers = SqlAlchemyIdempotencyStore(database.writer, IDEMPOTENCY, reader=database.reader)
    relay = OutboxRelay(outbox, bus, batch_size=settings.batch_size, registry=registry)

    def unit_of_work() -> OrdersUnitOfWork:
        return OrdersUnitOfWork(
            database, outbox=outbox, inbox=inbox, answers=answers, committed=relay.notify
        )

    handlers = OrderHandlers(
        unit_of_work, saga_timeout=settings.saga_timeout_seconds, clock=clock, registry=registry
    )
    consumers: Consumers[InventoryFact] = Consumers(
        bus,
        SOURCES,
        lambda _source: handlers.on_inventory,
        config=ConsumerConfig(ack_wait=settings.ack_wait, max_deliver=settings.max_deliver),
        batch_size=settings.batch_size,
        max_wait=settings.batch_wait,
        registry=registry,
        name="orders consumers",
    )
    queries = SqlOrderQueries(database)
    service = OrdersService(
        settings=settings,
        database=database,
        handlers=handlers,
        queries=queries,
        relay=relay,
        consumers=consumers,
        inbox=inbox,
        answers=answers,
        registry=registry,
        clock=clock,
    )
    service.app = create_app(
        handlers=handlers,
        queries=queries,
        answers=answers,
        settings=settings,
        readiness=service.readiness,
        registry=registry,
    )
    return service


SPEC: Final = ServiceSpec(
    name="orders",
    settings=OrdersSettings,
    build=build,
    port_offset=3,
    store_field="database_url",
    summary="order lifecycle, reservation saga",
)
"""The orders service as the platform's runners see it."""
