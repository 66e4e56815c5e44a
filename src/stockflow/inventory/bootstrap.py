"""The inventory's composition root: ``build(settings, *, bus)`` wires store, writer, relay,
consumers and the HTTP app; :data:`SPEC` declares the service to the platform. Nothing starts
here; :meth:`InventoryService.start` does (the platform runner calls it).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, cast
from urllib.parse import urlsplit

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from stockflow.inventory.adapters.peers import HttpPeers, LeasedPeers
from stockflow.inventory.entrypoints.consumers import InventoryConsumers
from stockflow.inventory.entrypoints.feeder import FeederProcess
from stockflow.inventory.entrypoints.http import create_app
from stockflow.inventory.entrypoints.partitioned import PartitionedConsumers
from stockflow.inventory.service_layer.leases import LeasedOwnership, LeaseManager
from stockflow.inventory.service_layer.ownership import Ownership
from stockflow.inventory.service_layer.ports import EventStore, LeaseStore, Peers
from stockflow.inventory.service_layer.reads import CommittedReads
from stockflow.inventory.service_layer.relay import PUBLISHED_CHECKPOINT, EventRelay
from stockflow.inventory.service_layer.reservations import ReservationCoordinator
from stockflow.inventory.service_layer.writer import InventoryWriter
from stockflow.inventory.settings import InventorySettings
from stockflow.platform.spec import ServiceSpec
from stockflow_kit.lifecycle import Component, Lifecycle, Periodic, component
from stockflow_kit.messaging import Bus, ConsumerConfig
from stockflow_kit.observability.forwarding import Collectable, ForwardedMetrics, MergedMetrics

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
    """One inventory process: its parts, and their lifecycle (started by the platform runner).

    The lifecycle starts, in order: the store, the writer (loading its states first), the
    relay, the consumers (or the feeder child) and the pruner (with ``assignment=leases``: the
    router consumers, then the lease manager, which opens the partitions it acquires and runs
    the relay while it holds the relay's lease); it stops them in reverse, so
    the consumers settle the batch in hand before the writer and the store go away. If a part
    fails to start, the ones already started are stopped again.
    """

    settings: InventorySettings
    store: EventStore
    bus: Bus
    writer: InventoryWriter
    relay: EventRelay
    consumers: InventoryConsumers | FeederProcess | PartitionedConsumers
    registry: CollectorRegistry
    clock: Callable[[], datetime]
    peers: Peers | None = None
    leases: LeaseManager | None = None
    app: FastAPI = field(init=False)
    lifecycle: Lifecycle = field(init=False)

    def __post_init__(self) -> None:
        processed = self.settings.processed_retention_seconds
        parts: list[Component] = [
            component(
                "event store",
                start=self.store.start,
                stop=self.store.close,
                readiness=self._store_readiness,
            ),
            component(
                "writer",
                start=self._start_writer,
                stop=self.writer.stop,
                readiness=self._writer_readiness,
            ),
        ]
        if self.settings.publish_events and self.leases is None:
            parts.append(component("relay", start=self.relay.start, stop=self.relay.stop))
        parts.append(
            component(
                "consumers",
                start=self.consumers.start,
                stop=self.consumers.stop,
                readiness=lambda: None if self.consumers.running else "not consuming",
            )
        )
        if self.peers is not None:
            parts.append(component("peers", stop=self.peers.aclose))
        if self.leases is not None:  # stopped before the peers: a drain may call them
            leases = self.leases
            parts.append(
                component(
                    "leases",
                    start=leases.start,
                    stop=leases.stop,
                    readiness=lambda: None if leases.running else "not holding leases",
                )
            )
        parts.append(
            Periodic("pruner", self._prune, interval=min(3600.0, processed), registry=self.registry)
        )
        self.lifecycle = Lifecycle(parts, name="inventory")

    @property
    def started(self) -> bool:
        return self.lifecycle.started

    async def start(self) -> None:
        await self.lifecycle.start()
        _log.info(
            "inventory.started",
            port=self.settings.port,
            skus=len(self.writer.states),
            replica=f"{self.settings.replica_index}/{self.settings.replicas}",
            member=None if self.leases is None else self.leases.member,
        )

    async def stop(self) -> None:
        if self.lifecycle.started:
            await self.lifecycle.stop()
            _log.info("inventory.stopped")

    async def readiness(self) -> str | None:
        """``None`` when ready; else what is missing."""
        return await self.lifecycle.readiness()

    async def _start_writer(self) -> None:
        await self.writer.load()
        self.writer.start()

    def _writer_readiness(self) -> str | None:
        if not self.writer.loaded:
            return "still loading its states"
        if not self.writer.running:
            return "not running"
        failure = self.writer.committed.recent_storage_failure(_STORAGE_FAILURE_WINDOW)
        if failure is not None:
            return f"writes to the event store fail: {failure}"
        return None

    async def _store_readiness(self) -> str | None:
        try:
            await self.store.projection_checkpoint()
        except Exception as error:  # any failure of the probe means: not ready
            return f"not reachable ({type(error).__name__})"
        return None

    async def _prune(self) -> None:
        """Forget processed ids and idempotency records past their windows."""
        processed = timedelta(seconds=self.settings.processed_retention_seconds)
        pruned = await self.store.prune_processed(self.clock() - processed)
        answers = await self.store.prune(
            self.clock().timestamp() - self.settings.idempotency_retention_seconds
        )
        _log.info("inventory.pruned", processed_ids=pruned, idempotency_records=answers)


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
    if settings.assignment == "leases":
        return _build_leased(settings, bus=bus, clock=clock, store=store, registry=registry)
    ownership = Ownership(settings.partitions, settings.replicas, settings.replica_index)
    writer = _writer(settings, store, ownership, clock, registry)
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
    metrics: Collectable = registry
    if settings.feeder == "process":
        forwarded = ForwardedMetrics({"process": "feeder"})
        consumers = FeederProcess(writer, settings, forwarded)
        metrics = MergedMetrics(registry, forwarded)  # the feeder's metrics on our /metrics
    else:
        consumers = InventoryConsumers(
            bus,
            writer,
            batch_size=settings.batch_size,
            max_wait=settings.batch_wait,
            in_flight_batches=settings.in_flight_batches,
            config=_consumer_config(settings),
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
    return _with_app(service, metrics)


def _writer(
    settings: InventorySettings,
    store: EventStore,
    ownership: Ownership,
    clock: Callable[[], datetime],
    registry: CollectorRegistry,
) -> InventoryWriter:
    return InventoryWriter(
        store,
        clock=clock,
        ownership=ownership,
        batch_size=settings.batch_size,
        low_stock_threshold=settings.low_stock_threshold,
        snapshot_every=settings.snapshot_every,
        registry=registry,
    )


def _consumer_config(settings: InventorySettings) -> ConsumerConfig:
    return ConsumerConfig(ack_wait=settings.ack_wait, max_deliver=settings.max_deliver)


def _with_app(service: InventoryService, metrics: Collectable) -> InventoryService:
    writer, store, settings = service.writer, service.store, service.settings
    registry = service.registry
    service.app = create_app(
        writer=writer,
        reads=CommittedReads(writer.committed, store),
        store=store,
        idempotency_store=store,
        settings=settings,
        readiness=service.readiness,
        registry=registry,
        metrics=metrics,
    )
    return service


def _build_leased(
    settings: InventorySettings,
    *,
    bus: Bus,
    clock: Callable[[], datetime],
    store: EventStore,
    registry: CollectorRegistry,
) -> InventoryService:
    """The dynamic mode (ADR 0010): leases, a router, a durable per partition, one relay."""
    if not callable(getattr(store, "acquire", None)):
        raise ValueError("assignment=leases needs a PostgreSQL (or in-memory) event store")
    lease_store = cast(LeaseStore, store)
    member = settings.member_id or (f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    ownership = LeasedOwnership(partitions=settings.partitions, member=member)
    writer = _writer(settings, store, ownership, clock, registry)
    managers: list[LeaseManager] = []
    peers = LeasedPeers(
        lambda partition: managers[0].owner_url(partition) if managers else None,
        service_token=settings.token() or "",
        registry=registry,
    )
    coordinator = ReservationCoordinator(writer, peers, registry=registry)
    consumers = PartitionedConsumers(
        bus,
        writer,
        coordinator,
        batch_size=settings.batch_size,
        max_wait=settings.batch_wait,
        in_flight_batches=settings.in_flight_batches,
        config=_consumer_config(settings),
        registry=registry,
    )
    relay = EventRelay(store, bus, wake=writer.changed, batch_size=settings.batch_size)

    async def load(partitions: list[int]) -> None:
        await writer.committed.load_partitions(partitions)

    async def drop(partition: int) -> None:
        writer.drop_partition(partition)

    manager = LeaseManager(
        lease_store,
        ownership,
        url=settings.advertise_url.rstrip("/") or f"http://127.0.0.1:{settings.port}",
        load=load,
        consume=consumers.consume,
        stop_consuming=consumers.stop_consuming,
        drop=drop,
        start_relay=relay.start if settings.publish_events else None,
        stop_relay=relay.stop,
        ttl=settings.lease_ttl,
        interval=settings.lease_interval,
        registry=registry,
    )
    managers.append(manager)
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
        leases=manager,
    )
    return _with_app(service, registry)


SPEC: Final = ServiceSpec(
    name="inventory",
    settings=InventorySettings,
    build=build,
    port_offset=2,
    store_field="event_store_url",
    summary="event-sourced stock per SKU, reservations",
)
"""The inventory as the platform's runners see it."""
