"""The lease manager (ADR 0010) on the in-memory lease store: fair shares, release to a
newcomer (loaded before held, drained before freed), takeover after a member stops
renewing, and a loss noticed by the writer."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from stockflow.inventory.adapters.event_store.memory import InMemoryEventStore
from stockflow.inventory.service_layer.leases import (
    RELAY_LEASE,
    LeasedOwnership,
    LeaseManager,
    fair_share,
)

PARTITIONS = 8


class Member:
    """A manager whose hooks record what happened, in order."""

    def __init__(self, store: InMemoryEventStore, name: str, *, ttl: float = 30.0) -> None:
        self.ownership = LeasedOwnership(partitions=PARTITIONS, member=name)
        self.log: list[tuple[str, int]] = []
        self.relaying = False

        async def load(partitions: list[int]) -> None:
            for p in partitions:
                assert p not in self.ownership.held  # folded BEFORE it is decided on
                self.log.append(("load", p))

        async def consume(p: int) -> None:
            assert p in self.ownership.held
            self.log.append(("consume", p))

        async def stop_consuming(p: int) -> None:
            self.log.append(("stop", p))

        async def drop(p: int) -> None:
            assert p not in self.ownership.held
            self.log.append(("drop", p))

        def start_relay() -> None:
            self.relaying = True

        async def stop_relay() -> None:
            self.relaying = False

        self.manager = LeaseManager(
            store,
            self.ownership,
            url=f"http://{name}",
            load=load,
            consume=consume,
            stop_consuming=stop_consuming,
            drop=drop,
            start_relay=start_relay,
            stop_relay=stop_relay,
            ttl=ttl,
            interval=0.02,
            registry=CollectorRegistry(),
        )

    @property
    def held(self) -> set[int]:
        return set(self.ownership.held)


async def settle(*members: Member, rounds: int = 3) -> None:
    for _ in range(rounds):
        for member in members:
            await member.manager.keep_alive()
            await member.manager.rebalance()


def test_the_fair_share_splits_the_partitions_and_gives_the_rest_to_the_first() -> None:
    assert [fair_share(16, ["a", "b", "c"], m) for m in "abc"] == [6, 5, 5]
    assert fair_share(16, ["a"], "a") == 16
    assert fair_share(16, ["a"], "z") == 0


async def test_a_joining_member_gets_its_share_from_a_drained_release() -> None:
    store = InMemoryEventStore()
    a, b = Member(store, "a"), Member(store, "b")
    await store.ensure_partitions([*range(PARTITIONS), RELAY_LEASE])
    await settle(a)
    assert a.held == set(range(PARTITIONS))
    assert a.relaying
    await settle(a, b)
    assert len(a.held) == len(b.held) == PARTITIONS // 2
    assert a.held.isdisjoint(b.held)
    moved = sorted(b.held)
    for p in moved:  # the old owner stopped consuming, then dropped, before b loaded it
        assert a.log.index(("stop", p)) < a.log.index(("drop", p))
        assert b.log.index(("load", p)) < b.log.index(("consume", p))
    leases = {lease.partition: lease for lease in await store.leases()}
    assert all(leases[p].owner == "b" and leases[p].epoch == 2 for p in moved)
    assert not b.relaying  # one relay
    assert b.manager.handover.labels("acquire")._sum.get() > 0
    assert a.manager.handover.labels("release")._sum.get() > 0


async def test_a_member_that_stops_renewing_is_taken_over_and_learns_it_lost() -> None:
    store = InMemoryEventStore()
    a, b = Member(store, "a", ttl=0.2), Member(store, "b", ttl=0.2)
    await store.ensure_partitions([*range(PARTITIONS), RELAY_LEASE])
    await settle(a, b)
    a_had = a.held
    await asyncio.sleep(0.3)  # a is "paused": no renewal; its leases and membership expire
    await settle(b)
    assert b.held == set(range(PARTITIONS))
    assert b.relaying
    await a.manager.keep_alive()  # a wakes up: renewal returns nothing of what it had
    assert a.held == set()
    await asyncio.sleep(0.01)  # its consumers are stopped in the background
    assert all(("stop", p) in a.log and ("drop", p) in a.log for p in a_had)
    assert a.manager.changes.labels("lost")._value.get() == len(a_had)


async def test_a_loss_found_by_a_commit_stops_the_partition_at_once() -> None:
    store = InMemoryEventStore()
    a = Member(store, "a")
    await store.ensure_partitions([*range(PARTITIONS), RELAY_LEASE])
    await settle(a)
    a.ownership.lost([3])
    assert a.ownership.changed.is_set()
    assert 3 not in a.held
    await a.manager.keep_alive()
    await asyncio.sleep(0.01)
    assert ("stop", 3) in a.log


async def test_a_stopping_member_hands_everything_back_and_leaves() -> None:
    store = InMemoryEventStore()
    a, b = Member(store, "a"), Member(store, "b")
    await store.ensure_partitions([*range(PARTITIONS), RELAY_LEASE])
    await a.manager.start()
    await b.manager.start()
    await settle(a, b)
    await a.manager.stop()
    assert a.held == set()
    assert all(lease.owner != "a" for lease in await store.leases())
    await settle(b)
    assert b.held == set(range(PARTITIONS))
    await b.manager.stop()
