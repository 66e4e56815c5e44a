"""The notifications service's composition root: ``build(settings, *, bus)`` wires the
database, the unit of work, the use cases, the consumers of the orders' and the inventory's
events, the webhook dispatcher and the HTTP app; :data:`SPEC` declares the service to the
platform. Nothing starts here; :meth:`NotificationsService.start` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from stockflow.notifications.adapters.orm import INBOX, MIGRATIONS
from stockflow.notifications.adapters.repository import prune_deliveries
from stockflow.notifications.adapters.resolver import SystemResolver
from stockflow.notifications.adapters.sender import HttpxSender
from stockflow.notifications.adapters.unit_of_work import NotificationsUnitOfWork, SqlQueries
from stockflow.notifications.domain.targets import TargetPolicy
from stockflow.notifications.entrypoints.consumers import SOURCES
from stockflow.notifications.entrypoints.http import create_app
from stockflow.notifications.service_layer.dispatcher import DeliveryPolicy, Dispatcher
from stockflow.notifications.service_layer.handlers import EventItem, NotificationHandlers
from stockflow.notifications.service_layer.ports import Resolver
from stockflow.notifications.settings import NotificationsSettings
from stockflow.platform.spec import ServiceSpec
from stockflow.platform.sql import Database, database_component, database_for
from stockflow_kit.lifecycle import BackgroundTask, Lifecycle, Periodic, component
from stockflow_kit.messaging import Bus, ConsumerConfig, Consumers
from stockflow_kit.messaging.sqlalchemy import SqlAlchemyInbox

__all__ = ["SPEC", "NotificationsService", "build"]

_log = structlog.get_logger("stockflow.notifications")


@dataclass(eq=False)
class NotificationsService:
    """One notifications process. The lifecycle starts, in order: the database (migrated),
    the consumers, the dispatcher and the pruner; it stops them in reverse (and hands back
    the deliveries the dispatcher held when it stopped)."""

    settings: NotificationsSettings
    database: Database
    handlers: NotificationHandlers
    queries: SqlQueries
    consumers: Consumers[EventItem]
    dispatcher: Dispatcher
    sender: HttpxSender
    inbox: SqlAlchemyInbox
    registry: CollectorRegistry
    clock: Callable[[], float]
    app: FastAPI = field(init=False)
    lifecycle: Lifecycle = field(init=False)

    def __post_init__(self) -> None:
        retention = min(
            self.settings.processed_retention_seconds, self.settings.delivery_retention_seconds
        )
        self.lifecycle = Lifecycle(
            [
                database_component(self.database, MIGRATIONS, closing=self.sender.close),
                self.consumers,
                # Stops after the dispatcher: hands back the deliveries its last round held.
                component("delivery leases", stop=self.dispatcher.release),
                BackgroundTask("webhook dispatcher", self.dispatcher.run, registry=self.registry),
                Periodic(
                    "pruner", self.prune, interval=min(3600.0, retention), registry=self.registry
                ),
            ],
            name="notifications",
        )

    async def start(self) -> None:
        await self.lifecycle.start()
        _log.info("notifications.started", port=self.settings.port, database=self.database.dialect)

    async def stop(self) -> None:
        if self.lifecycle.started:
            await self.lifecycle.stop()
            _log.info("notifications.stopped")

    async def readiness(self) -> str | None:
        return await self.lifecycle.readiness()

    async def prune(self) -> None:
        """Forget processed message ids, and settled deliveries, past their windows."""
        now = self.clock()
        async with self.database.writer.begin() as connection:
            processed = await self.inbox.purge(
                connection, self.settings.processed_retention_seconds, now=now
            )
            deliveries = await prune_deliveries(
                connection, before=now - self.settings.delivery_retention_seconds
            )
        _log.info("notifications.pruned", processed_ids=processed, deliveries=deliveries)


def build(
    settings: NotificationsSettings,
    *,
    bus: Bus,
    clock: Callable[[], float] = time.time,
    registry: CollectorRegistry | None = None,
    resolver: Resolver | None = None,
) -> NotificationsService:
    """Wire one notifications service. ``bus`` is started and closed by the caller."""
    registry = registry or CollectorRegistry()
    database = database_for(settings.database_url, name="notifications")
    inbox = SqlAlchemyInbox(INBOX, name="notifications", registry=registry)
    targets = TargetPolicy(
        settings.webhook_allowed_hosts, allow_public=settings.webhook_allow_public
    )

    def unit_of_work() -> NotificationsUnitOfWork:
        return NotificationsUnitOfWork(database, inbox=inbox)

    queries = SqlQueries(database)
    sender = HttpxSender()
    handlers = NotificationHandlers(unit_of_work, policy=targets, clock=clock, registry=registry)
    dispatcher = Dispatcher(
        unit_of_work,
        queries,
        resolver=resolver or SystemResolver(),
        sender=sender,
        targets=targets,
        policy=DeliveryPolicy(
            max_attempts=settings.webhook_max_attempts,
            backoff_initial=settings.webhook_backoff_initial,
            backoff_max=settings.webhook_backoff_max,
            timeout=settings.webhook_timeout_seconds,
            batch_size=settings.webhook_batch_size,
            concurrency=settings.webhook_concurrency,
            breaker_failures=settings.webhook_breaker_failures,
            breaker_reset=settings.webhook_breaker_reset_seconds,
            poll=settings.webhook_poll_seconds,
        ),
        metrics=handlers.metrics,
        clock=clock,
        registry=registry,
    )
    handlers.queued = dispatcher.notify
    consumers: Consumers[EventItem] = Consumers(
        bus,
        SOURCES,
        lambda _source: handlers.on_events,
        config=ConsumerConfig(ack_wait=settings.ack_wait, max_deliver=settings.max_deliver),
        batch_size=settings.batch_size,
        max_wait=settings.batch_wait,
        registry=registry,
        name="notifications consumers",
    )
    service = NotificationsService(
        settings=settings,
        database=database,
        handlers=handlers,
        queries=queries,
        consumers=consumers,
        dispatcher=dispatcher,
        sender=sender,
        inbox=inbox,
        registry=registry,
        clock=clock,
    )
    service.app = create_app(
        handlers=handlers,
        queries=queries,
        settings=settings,
        readiness=service.readiness,
        registry=registry,
    )
    return service


SPEC: Final = ServiceSpec(
    name="notifications",
    settings=NotificationsSettings,
    build=build,
    port_offset=4,
    store_field="database_url",
    summary="in-app notifications, signed outgoing webhooks",
)
"""The notifications service as the platform's runners see it."""
