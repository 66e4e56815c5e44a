"""Dynamic partition assignment (ADR 0010): partitions owned through leases in the database.

:class:`LeasedOwnership` is what the writer, the consumers and the coordinator ask "is this
partition mine?": the partitions this member holds now, each with the epoch it was acquired
at. Every commit claims the ``(partition, epoch)`` pairs it writes (:class:`LeaseClaim`) and
the store checks them under a row lock in the commit's transaction, so a member that lost a
partition (it paused past its expiry and was taken over) cannot write it: its commit fails
with :class:`LeaseLostError` and nothing is written.

:class:`LeaseManager` is the member: every ``interval`` it heartbeats (membership, with its
base URL for peer calls), renews its leases, notices the ones it lost, computes its fair
share from the live members and

- releases its excess when members joined (stop consuming the partition, let the batch in
  hand commit, drop its states, then free the lease: the newcomer takes it on its next tick,
  no expiry to wait for);
- acquires free or expired partitions up to its share (take the lease, fold the partition's
  SKUs from the store, only then accept and consume its commands);
- holds the relay's lease (:data:`RELAY_LEASE`) when it is free: one member relays the log.

Expiry (``ttl``, the database's clock) only covers a member that died without releasing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import structlog
from prometheus_client import CollectorRegistry

from stockflow.inventory.domain.commands import OrderLine
from stockflow.inventory.service_layer.ownership import FENCE_KEY, Ownership, partition_of
from stockflow.inventory.service_layer.ports import LeaseClaim, LeaseStore
from stockflow_kit.http import idempotency_message_id
from stockflow_kit.observability import counter, gauge, histogram

__all__ = [
    "INTERNAL_CALLER",
    "RELAY_LEASE",
    "RELEASE_ROUTE",
    "RESERVE_ROUTE",
    "LeaseManager",
    "LeasedOwnership",
    "fair_share",
    "recorded_id",
]

RESERVE_ROUTE = "/internal/reservations"
RELEASE_ROUTE = "/internal/reservations/{order_id}/release"
INTERNAL_CALLER = "service"
"""The internal routes a spanning reservation's parts go to, and their idempotency caller."""


def recorded_id(route: str, key: str) -> str:
    """The message id a part sent with Idempotency-Key ``key`` to ``route`` is recorded under
    by the member owning it (the internal API's rule). With leases a part may be remote on one
    attempt and local on the next (its partition moved): a local part is recorded under the
    SAME id, so it is never applied twice, wherever it runs."""
    return idempotency_message_id(f"POST {route}|{INTERNAL_CALLER}", key)


RELAY_LEASE = -1
"""The lease row of the event relay: its holder publishes the log to the bus."""

_log = structlog.get_logger("stockflow.inventory")


def fair_share(partitions: int, members: list[str], member: str) -> int:
    """How many partitions ``member`` should hold among the live ``members`` (sorted)."""
    if member not in members:
        return 0
    rank = members.index(member)
    count = len(members)
    return partitions // count + (1 if rank < partitions % count else 0)


@dataclass(frozen=True)
class LeasedOwnership(Ownership):
    """The partitions member ``member`` holds now (``held``: partition -> epoch).

    Mutated by the :class:`LeaseManager` only; ``lost`` also by the writer when a commit met a
    moved lease. Units of a spanning reservation are partitions here (not replicas): each
    part is recorded under the message id scoped to its partition, whoever owns it.
    """

    member: str = ""
    held: dict[int, int] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a partition was lost outside the manager's loop (wakes it)."""

    leased: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "owns_all", False)

    @property
    def fence_key(self) -> str:
        return f"{FENCE_KEY}/leases"

    def owner_of(self, sku: str) -> int:
        """``-1``: the owner of a partition is not a replica index here (ask the leases)."""
        return -1

    def owns(self, sku: str) -> bool:
        return partition_of(sku, self.partitions) in self.held

    def split(self, lines: Iterable[OrderLine]) -> dict[int, tuple[OrderLine, ...]]:
        """The lines per partition, in the order of their first line."""
        parts: dict[int, list[OrderLine]] = {}
        for line in lines:
            parts.setdefault(partition_of(line[0], self.partitions), []).append(line)
        return {partition: tuple(part) for partition, part in parts.items()}

    def is_local(self, unit: int) -> bool:
        return unit in self.held

    def part_key(self, message_id: str, unit: int) -> str:
        return self.scoped_id(message_id, unit)

    def claim(self, skus: Iterable[str]) -> LeaseClaim | None:
        """The claim of a batch writing ``skus``; ``None`` when one is not held."""
        held = self.held
        partitions = self.partitions
        wanted: dict[int, int] = {}
        for sku in skus:
            partition = partition_of(sku, partitions)
            if partition not in wanted:
                epoch = held.get(partition)
                if epoch is None:
                    return None
                wanted[partition] = epoch
        return LeaseClaim(member=self.member, held=tuple(sorted(wanted.items())))

    def lost(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.held.pop(partition, None)
        self.changed.set()


PartitionHook = Callable[[int], Awaitable[None]]
LoadHook = Callable[[list[int]], Awaitable[None]]


class LeaseManager:
    """This member's loop over the lease store; see the module docstring.

    Hooks: ``load(ps)`` folds the SKUs of partitions ``ps`` into the writer (before they are
    marked held),
    ``consume(p)`` starts consuming p, ``stop_consuming(p)`` stops it after its batches in
    hand settled, ``drop(p)`` forgets p's states; ``relay`` start/stop the event relay.
    A release waits at most ``drain_timeout`` s for the drain (see :meth:`_release`).
    """

    def __init__(
        self,
        store: LeaseStore,
        ownership: LeasedOwnership,
        *,
        url: str,
        load: LoadHook,
        consume: PartitionHook,
        stop_consuming: PartitionHook,
        drop: PartitionHook,
        start_relay: Callable[[], None] | None = None,
        stop_relay: Callable[[], Awaitable[None]] | None = None,
        ttl: float = 3.0,
        interval: float = 0.25,
        drain_timeout: float = 0.5,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.ownership = ownership
        self.member = ownership.member
        self.url = url
        self._load, self._consume = load, consume
        self._stop_consuming, self._drop = stop_consuming, drop
        self._start_relay, self._stop_relay = start_relay, stop_relay
        self.ttl = ttl
        self.interval = interval
        self.drain_timeout = drain_timeout
        self.open: dict[int, int] = {}
        """Partitions being consumed here (partition -> epoch)."""
        self.relay_epoch: int | None = None
        self.owners: dict[int, str] = {}
        """Last known live owner of every partition (for peer calls)."""
        self.urls: dict[str, str] = {}
        """Last known base URL of every live member."""
        self.members: list[str] = []
        """The live members as last seen, by id."""
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Future[None]] = set()
        self.changes = counter(
            "inventory_lease_changes",
            "Partition leases acquired, released (to rebalance) or lost (taken over).",
            ["change"],
            registry=registry,
        )
        self.held_gauge = gauge(
            "inventory_leases_held", "Partitions this member holds.", registry=registry
        )
        self.handover = histogram(
            "inventory_partition_handover_seconds",
            "This member's part of a partition's rebalance pause: the drain of a release"
            " (side=release), the acquire + load + subscribe of an acquisition"
            " (side=acquire). The whole pause: lease_commits (stockflow bench replicas).",
            ["side"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=registry,
        )
        self.members_gauge = gauge(
            "inventory_live_members", "Live inventory members seen.", registry=registry
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        partitions = [*range(self.ownership.partitions), RELAY_LEASE]
        await self.store.ensure_partitions(partitions)
        await self.keep_alive()
        await self.rebalance()
        self._tasks = [
            asyncio.create_task(self._loop(self.keep_alive), name="inventory-lease-renewal"),
            asyncio.create_task(self._loop(self.rebalance, wake=True), name="inventory-rebalance"),
        ]

    async def stop(self) -> None:
        """Stop the loops, hand every partition back (drained) and leave the membership."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._pending, return_exceptions=True)
        await asyncio.gather(*(self._release(p) for p in list(self.open)))
        if self.relay_epoch is not None:
            await self._drop_relay(release=True)
        with contextlib.suppress(Exception):
            await self.store.leave(self.member)

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    async def _loop(self, step: Callable[[], Awaitable[None]], *, wake: bool = False) -> None:
        changed = self.ownership.changed
        while True:
            if wake:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self.interval)
                changed.clear()
            else:
                await asyncio.sleep(self.interval)
            try:
                await step()
            except Exception as error:  # the database may be away: try again next round
                _log.warning("inventory.lease_round_failed", step=step.__name__, error=repr(error))

    # ------------------------------------------------------------------ the two rounds
    async def keep_alive(self) -> None:
        """Heartbeat and renew; notice the leases lost. Never waits for a drain or a load
        (its own loop), so a slow handover cannot let the other leases expire."""
        store, member = self.store, self.member
        members = await store.heartbeat(member, self.url, self.ttl)
        before = dict(self.open)  # acquired during the renewal: not judged by it
        renewed = await store.renew(member, self.ttl)
        self.members = [m.member_id for m in members]
        self.urls = {m.member_id: m.url for m in members}
        self.members_gauge.set(len(members))
        for partition, epoch in before.items():
            if self.open.get(partition) != epoch:
                continue  # released (or lost) meanwhile
            if renewed.get(partition) != epoch or partition not in self.ownership.held:
                self._lose(partition)
        if self.relay_epoch is not None and renewed.get(RELAY_LEASE) != self.relay_epoch:
            _log.warning("inventory.relay_lease_lost", member=member)
            self._background(self._drop_relay(release=False))

    async def rebalance(self) -> None:
        """Release the excess over the fair share (drained), acquire free partitions up to
        it, take the relay's lease when it is free."""
        store, member = self.store, self.member
        share = fair_share(self.ownership.partitions, self.members, member)
        excess = len(self.open) - share
        if excess > 0:
            # The highest partitions go: the newcomers take exactly these on their next round.
            going = sorted(self.open, reverse=True)[:excess]
            await asyncio.gather(*(self._release(p) for p in going))
        leases = await store.leases()
        self.owners = {
            lease.partition: lease.owner
            for lease in leases
            if lease.owner is not None and lease.live and lease.partition >= 0
        }
        if excess < 0:
            free = [
                lease.partition
                for lease in leases
                if lease.partition >= 0
                and lease.partition not in self.open
                and (lease.owner is None or not lease.live)
            ]
            if free:
                await self._acquire(free[:-excess])
        if self.relay_epoch is None and self._start_relay is not None:
            relay = next((lease for lease in leases if lease.partition == RELAY_LEASE), None)
            if relay is not None and (relay.owner is None or not relay.live):
                taken = await store.acquire(RELAY_LEASE, member, self.ttl)
                if taken is not None:
                    self.relay_epoch = taken
                    self._start_relay()
                    _log.info("inventory.relay_lease_acquired", member=member, epoch=taken)
        self.held_gauge.set(len(self.open))

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _acquire(self, candidates: list[int]) -> None:
        """Take what of ``candidates`` is still free, fold all their SKUs in one pass, and
        only then decide on and consume them."""
        started = time.perf_counter()
        member, ttl = self.member, self.ttl
        epochs = await asyncio.gather(*(self.store.acquire(p, member, ttl) for p in candidates))
        taken = {p: e for p, e in zip(candidates, epochs, strict=True) if e is not None}
        if not taken:
            return  # others were quicker
        try:
            await self._load(list(taken))
        except BaseException:
            # Not loaded: not ours to decide on. Hand them back for anyone (us next round).
            for partition, epoch in taken.items():
                with contextlib.suppress(Exception):
                    await self.store.release(partition, member, epoch)
            raise
        loaded = time.perf_counter()
        for partition, epoch in taken.items():
            self.ownership.held[partition] = epoch
            self.open[partition] = epoch
            self.owners[partition] = member
        await asyncio.gather(*(self._consume(p) for p in taken))
        self.handover.labels("acquire").observe(time.perf_counter() - started)
        for partition, epoch in taken.items():
            self.changes.labels("acquired").inc()
            _log.info(
                "inventory.lease_acquired",
                member=member,
                partition=partition,
                epoch=epoch,
                load_seconds=round(loaded - started, 3),
                seconds=round(time.perf_counter() - started, 3),
            )

    async def _release(self, partition: int) -> None:
        """Drain, then free: the batch in hand commits under the lease, nothing after it.

        The drain is bounded (``drain_timeout``): a batch still in hand then fails its
        commits against the freed lease and comes back to the new owner."""
        started = time.perf_counter()
        epoch = self.open.pop(partition)
        stopping = asyncio.ensure_future(self._stop_consuming(partition))
        drained = True
        try:
            await asyncio.wait_for(asyncio.shield(stopping), self.drain_timeout)
        except TimeoutError:
            # A batch in hand waits on something slow (a spanning order's peer). Do not make
            # the partition wait for it: once the lease is freed its commits fail (the claim),
            # so it is nakked and redelivered to the new owner, who re-drives it.
            drained = False
            self._pending.add(stopping)
            stopping.add_done_callback(self._pending.discard)
        self.ownership.held.pop(partition, None)
        await self._drop(partition)
        released = False
        with contextlib.suppress(Exception):  # not freed: it expires instead
            released = await self.store.release(partition, self.member, epoch)
        self.changes.labels("released").inc()
        self.handover.labels("release").observe(time.perf_counter() - started)
        _log.info(
            "inventory.lease_released",
            member=self.member,
            partition=partition,
            epoch=epoch,
            freed=released,
            drained=drained,
            drain_seconds=round(time.perf_counter() - started, 3),
        )

    def _lose(self, partition: int) -> None:
        """Taken over (or a commit found it moved): stop deciding on it at once; stop its
        consumer in the background (its batches in hand fail their commits)."""
        epoch = self.open.pop(partition)
        self.ownership.held.pop(partition, None)
        self.changes.labels("lost").inc()
        self.held_gauge.set(len(self.open))
        _log.warning("inventory.lease_lost", member=self.member, partition=partition, epoch=epoch)

        async def close() -> None:
            await self._stop_consuming(partition)
            if partition not in self.open:  # not acquired again meanwhile
                await self._drop(partition)

        self._background(close())

    async def _drop_relay(self, *, release: bool) -> None:
        epoch, self.relay_epoch = self.relay_epoch, None
        if self._stop_relay is not None:
            await self._stop_relay()
        if release and epoch is not None:
            with contextlib.suppress(Exception):
                await self.store.release(RELAY_LEASE, self.member, epoch)

    def owner_url(self, partition: int) -> str | None:
        """The base URL of ``partition``'s owner as last seen (``None``: unknown)."""
        owner = self.owners.get(partition)
        return None if owner is None else self.urls.get(owner)
