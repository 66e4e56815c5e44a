"""The inventory's composition root: ``build(settings, *, bus)`` wires store, writer, relay,
consumers and the HTTP app; :data:`SPEC` declares the service to the platform. Nothing starts
here; :meth:`InventoryService.start` does (the platform runner calls it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from stockflow.inventory.adapters.peers import HttpPeers
from stockflow.inventory.entrypoints.consumers import InventoryConsumers
from stockflow.inventory.entrypoints.feeder import FeederProcess
from stockflow.inventory.entrypoints.http import create_app
from stockflow.inventory.service_layer.ownership import Ownership
from stockflow.inventory.service_layer.ports import EventStore, Peers
from stockflow.inventory.service_layer.reads import CommittedReads
from stockflow.inventory.service_layer.relay import PUBLISHED_CHECKPOINT, EventRelay
from stockflow.inventory.service_layer.reservations import ReservationCoordinator
from stockflow.inventory.service_layer.writer import InventoryWriter
from stockflow.inventory.settings import InventorySettings
from stockflow.platform.spec import ServiceSpec
from stockflow_kit.messaging import Bus, ConsumerConfig

__all__ = ["SPEC", "InventoryService", "build", "event_store_for"]

_log = structlog.get_logger("stockflow.inventory")
_STORAGE_FAILURE_WINDOW: Final = 10.0
"""Seconds a failed commit keeps the service unready. Then it reports ready again, so traffic
(and with it the next commit, which tells) comes back once the storage does; a commit that
fails again turns it unready at once."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def event_store_for(url: str, *, schema: str = "inventory") -> EventStore:
    """An unstarted event store for ``memory://``, ``sqlite:///<path>`` or ``postgresql://…``."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from stockflow.inventory.adapters.event_store.memory import InMemoryEventStore

        return InMemoryEventStore()
    if scheme == "sqlite":
        from stockflow.inventory.adapters.event_store.sqlite import SqliteEventStore

        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteEventStore(path)
    if scheme in {"postgresql", "postgres"}:
        from stockflow.inventory.adapters.event_store.postgres import PostgresEventStore

        return PostgresEventStore(url, schema=schema)
    raise ValueError(
        f"unsupported event store URL {url!r}: use memory://, sqlite:///… or postgresql://…"
    )


@dataclass(eq=False)
class InventoryService:
    """One inventory process: its parts and their lifecycle (started by the platform runner)."""

    settings: InventorySettings
    store: EventStore
    bus: Bus
    writer: InventoryWriter
    relay: EventRelay
    consumers: InventoryConsumers | FeederProcess
    registry: CollectorRegistry
    clock: Callable[[], datetime]
    peers: Peers | None = None
    app: FastAPI = field(init=False)
    started: bool = False
    _pruner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the store, rebuild the states, then start writer, relay and consumers.

        If a step fails, what was started is stopped again before the error propagates.
        """
        await self.store.start()
        try:
            await self.writer.load()
            self.writer.start()
            if self.settings.publish_events:
                self.relay.start()
            await self.consumers.start()
        except BaseException:
            await self._stop_parts()
            raise
        self._pruner = asyncio.create_task(self._prune(), name="inventory-pruner")
        self.started = True
        _log.info(
            "inventory.started",
            port=self.settings.port,
            skus=len(self.writer.states),
            replica=f"{self.settings.replica_index}/{self.settings.replicas}",
        )

    async def stop(self) -> None:
        """Stop consuming (the batch in hand settles first), then the writer, relay, store."""
        if not self.started:
            return
        self.started = False
        if self._pruner is not None:
            self._pruner.cancel()
            await asyncio.gather(self._pruner, return_exceptions=True)
        await self._stop_parts()
        _log.info("inventory.stopped")

    async def _stop_parts(self) -> None:
        await self.consumers.stop()
        await self.writer.stop()
        await self.relay.stop()
        if self.peers is not None:
            await self.peers.aclose()
        await self.store.close()

    async def readiness(self) -> str | None:
        """``None`` when ready; else what is missing."""
        if not self.writer.loaded:
            return "the writer is still loading its states"
        if not (self.writer.running and self.consumers.running):
            return "the writer or the consumers are not running"
        try:
            await asyncio.wait_for(self.store.projection_checkpoint(), 2.0)
        except Exception as error:  # any failure of the probe means: not ready
            return f"the event store is not reachable ({type(error).__name__})"
        failure = self.writer.committed.recent_storage_failure(_STORAGE_FAILURE_WINDOW)
        if failure is not None:
            return f"writes to the event store fail: {failure}"
        return None

    async def _prune(self) -> None:
        """Forget processed ids and idempotency records past their windows, hourly."""
        processed = timedelta(seconds=self.settings.processed_retention_seconds)
        while True:
            await asyncio.sleep(min(3600.0, processed.total_seconds()))
            try:
                pruned = await self.store.prune_processed(self.clock() - processed)
                answers = await self.store.prune(
                    self.clock().timestamp() - self.settings.idempotency_retention_seconds
                )
                _log.info("inventory.pruned", processed_ids=pruned, idempotency_records=answers)
            except Exception as error:  # retried next round; logged, not swallowed silently
                _log.warning("inventory.prune_failed", error=repr(error))


def build(
    settings: InventorySettings,
    *,
    bus: Bus,
    clock: Callable[[], datetime] = _utcnow,
    event_store: EventStore | None = None,
    registry: CollectorRegistry | None = None,
    peers: Peers | None = None,
) -> InventoryService:
    """Wire one inventory service. ``bus`` is started and closed by the caller.

    With ``replicas > 1`` the other replicas are reached through ``peers`` (tests), else
    over HTTP at ``settings.peer_urls`` (required then).
    """
    store = event_store or event_store_for(
        settings.event_store_url, schema=settings.event_store_schema
    )
    registry = registry or CollectorRegistry()
    ownership = Ownership(settings.partitions, settings.replicas, settings.replica_index)
    writer = InventoryWriter(
        store,
        clock=clock,
        ownership=ownership,
        batch_size=settings.batch_size,
        low_stock_threshold=settings.low_stock_threshold,
        snapshot_every=settings.snapshot_every,
        registry=registry,
    )
    coordinator = None
    if not ownership.owns_all:
        if peers is None:
            if not settings.peer_urls:
                raise ValueError("INVENTORY_PEER_URLS must name every replica when replicas > 1")
            peers = HttpPeers(
                settings.peer_urls,
                replica_index=settings.replica_index,
                service_token=settings.token() or "",
                registry=registry,
            )
        coordinator = ReservationCoordinator(writer, peers, registry=registry)
    relay = EventRelay(
        store,
        bus,
        wake=writer.changed,
        batch_size=settings.batch_size,
        owns=None if ownership.owns_all else ownership.owns,
        checkpoint=(
            PUBLISHED_CHECKPOINT
            if ownership.owns_all
            else f"{PUBLISHED_CHECKPOINT}/{ownership.replicas}/{ownership.replica_index}"
        ),
    )
    consumers: InventoryConsumers | FeederProcess
    if settings.feeder == "process":
        consumers = FeederProcess(writer, settings)
    else:
        consumers = InventoryConsumers(
            bus,
            writer,
            batch_size=settings.batch_size,
            max_wait=settings.batch_wait,
            in_flight_batches=settings.in_flight_batches,
            config=ConsumerConfig(ack_wait=settings.ack_wait, max_deliver=settings.max_deliver),
            registry=registry,
            coordinator=coordinator,
        )
    service = InventoryService(
        settings=settings,
        store=store,
        bus=bus,
        writer=writer,
        relay=relay,
        consumers=consumers,
        registry=registry,
        clock=clock,
        peers=peers,
    )
    service.app = create_app(
        writer=writer,
        reads=CommittedReads(writer.committed, store),
        store=store,
        idempotency_store=store,
        service_token=settings.token(),
        readiness=service.readiness,
        registry=registry,
        max_body_bytes=settings.max_body_bytes,
        max_in_flight=settings.max_in_flight,
        peer_urls=settings.peer_urls,
    )
    return service


SPEC: Final = ServiceSpec(
    name="inventory",
    settings=InventorySettings,
    build=build,
    port_offset=2,
    store_field="event_store_url",
    summary="event-sourced stock per SKU, reservations",
)
"""The inventory as the platform's runners see it."""
