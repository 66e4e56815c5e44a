"""The profiles service's composition root: ``build(settings, *, bus)`` wires the database, the
unit of work, the use cases, the outbox relay and the HTTP app; :data:`SPEC` declares the
service to the platform. Nothing starts here; :meth:`ProfilesService.start` does (the platform
runner calls it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from stockflow.platform.spec import ServiceSpec
from stockflow.platform.sql import Database, database_component, database_for
from stockflow.profiles.adapters.orm import MIGRATIONS, OUTBOX
from stockflow.profiles.adapters.unit_of_work import ProfilesUnitOfWork, SqlProfileQueries
from stockflow.profiles.entrypoints.http import create_app
from stockflow.profiles.service_layer.handlers import ProfileHandlers
from stockflow.profiles.settings import ProfilesSettings
from stockflow_kit.lifecycle import BackgroundTask, Lifecycle
from stockflow_kit.messaging import Bus, OutboxRelay
from stockflow_kit.messaging.sqlalchemy import SqlAlchemyOutbox

__all__ = ["SPEC", "ProfilesService", "build"]

_log = structlog.get_logger("stockflow.profiles")


@dataclass(eq=False)
class ProfilesService:
    """One profiles process. The lifecycle starts the database (migrated to the newest
    schema), then the outbox relay; it stops them in reverse."""

    settings: ProfilesSettings
    database: Database
    handlers: ProfileHandlers
    queries: SqlProfileQueries
    outbox: SqlAlchemyOutbox
    relay: OutboxRelay
    registry: CollectorRegistry
    app: FastAPI = field(init=False)
    lifecycle: Lifecycle = field(init=False)

    def __post_init__(self) -> None:
        self.lifecycle = Lifecycle(
            [
                database_component(self.database, MIGRATIONS),
                BackgroundTask("outbox relay", self.relay.run, registry=self.registry),
            ],
            name="profiles",
        )

    async def start(self) -> None:
        await self.lifecycle.start()
        _log.info("profiles.started", port=self.settings.port, database=self.database.dialect)

    async def stop(self) -> None:
        if self.lifecycle.started:
            await self.lifecycle.stop()
            _log.info("profiles.stopped")

    async def readiness(self) -> str | None:
        return await self.lifecycle.readiness()


def build(
    settings: ProfilesSettings,
    *,
    bus: Bus,
    clock: Callable[[], float] = time.time,
    registry: CollectorRegistry | None = None,
) -> ProfilesService:
    """Wire one profiles service. ``bus`` is started and closed by the caller."""
    registry = registry or CollectorRegistry()
    database = database_for(settings.database_url, name="profiles")
    outbox = SqlAlchemyOutbox(database.writer, OUTBOX, name="profiles", reader=database.reader)
    relay = OutboxRelay(outbox, bus, batch_size=settings.batch_size, registry=registry)

    def unit_of_work() -> ProfilesUnitOfWork:
        return ProfilesUnitOfWork(database, outbox=outbox, committed=relay.notify)

    queries = SqlProfileQueries(database)
    handlers = ProfileHandlers(unit_of_work, queries, clock=clock, registry=registry)
    service = ProfilesService(
        settings=settings,
        database=database,
        handlers=handlers,
        queries=queries,
        outbox=outbox,
        relay=relay,
        registry=registry,
    )
    service.app = create_app(
        handlers=handlers, settings=settings, readiness=service.readiness, registry=registry
    )
    return service


SPEC: Final = ServiceSpec(
    name="profiles",
    settings=ProfilesSettings,
    build=build,
    port_offset=1,
    store_field="database_url",
    summary="customer profiles (identity, contact data, addresses, preferences)",
)
"""The profiles service as the platform's runners see it."""
