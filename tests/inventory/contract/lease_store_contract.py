"""The ``LeaseStore`` role (ADR 0010): acquire, renew, release, expiry takeover, membership,
and the claim a commit carries: a member whose lease moved cannot commit."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from tests.inventory.contract.event_store_contract import StoreContract, batch, new_event

from stockflow.inventory.service_layer.ports import (
    CommitBatch,
    EventStore,
    LeaseClaim,
    LeaseLostError,
    LeaseStore,
)

TTL = 30.0
SHORT = 0.3
"""A lease ttl that runs out during a test (the stores' own clock decides)."""


def leases_of(store: EventStore) -> LeaseStore:
    return cast(LeaseStore, store)


def claimed(events: Any, member: str, *held: tuple[int, int]) -> CommitBatch:
    plain = batch(events)
    return CommitBatch(
        events=plain.events,
        processed_at=plain.processed_at,
        leases=LeaseClaim(member=member, held=held),
    )


class LeaseStoreContract(StoreContract):
    async def test_a_free_partition_is_acquired_once_at_a_new_epoch(
        self, store: EventStore
    ) -> None:
        leases = leases_of(store)
        await leases.ensure_partitions([0, 1])
        await leases.ensure_partitions([0, 1])  # idempotent
        assert await leases.acquire(0, "a", TTL) == 1
        assert await leases.acquire(0, "b", TTL) is None
        assert await leases.acquire(0, "a", TTL) is None  # live, even for its owner
        (zero, one) = await leases.leases()
        assert (zero.partition, zero.owner, zero.epoch, zero.live) == (0, "a", 1, True)
        assert (one.partition, one.owner) == (1, None)

    async def test_renew_returns_what_the_member_still_holds(self, store: EventStore) -> None:
        leases = leases_of(store)
        await leases.ensure_partitions([0, 1, 2])
        await leases.acquire(0, "a", TTL)
        await leases.acquire(2, "a", TTL)
        await leases.acquire(1, "b", TTL)
        assert await leases.renew("a", TTL) == {0: 1, 2: 1}
        assert await leases.renew("nobody", TTL) == {}

    async def test_a_released_partition_goes_to_the_next_at_a_higher_epoch(
        self, store: EventStore
    ) -> None:
        leases = leases_of(store)
        await leases.ensure_partitions([0])
        assert await leases.acquire(0, "a", TTL) == 1
        assert not await leases.release(0, "a", 2)  # not at that epoch
        assert not await leases.release(0, "b", 1)  # not its owner
        assert await leases.release(0, "a", 1)
        assert await leases.renew("a", TTL) == {}
        assert await leases.acquire(0, "b", TTL) == 2

    async def test_an_expired_lease_is_taken_over_and_its_owner_loses_it(
        self, store: EventStore
    ) -> None:
        leases = leases_of(store)
        await leases.ensure_partitions([0])
        assert await leases.acquire(0, "a", SHORT) == 1
        assert await leases.acquire(0, "b", TTL) is None
        await asyncio.sleep(SHORT + 0.2)
        (lease,) = await leases.leases()
        assert not lease.live
        assert await leases.acquire(0, "b", TTL) == 2
        assert await leases.renew("a", TTL) == {}

    async def test_a_commit_claiming_held_leases_goes_through(self, store: EventStore) -> None:
        leases = leases_of(store)
        await leases.ensure_partitions([0, 1])
        await leases.acquire(0, "a", TTL)
        await leases.acquire(1, "a", TTL)
        await store.commit(claimed([new_event("X", 1)], "a", (0, 1), (1, 1)))
        assert [e.stream_id for e in await store.read_all()] == ["X"]

    async def test_the_stale_owners_commit_is_rejected_and_leaves_no_trace(
        self, store: EventStore
    ) -> None:
        leases = leases_of(store)
        await leases.ensure_partitions([0, 1])
        await leases.acquire(0, "a", SHORT)
        await leases.acquire(1, "a", TTL)
        await asyncio.sleep(SHORT + 0.2)
        assert await leases.acquire(0, "b", TTL) == 2  # a paused past its expiry: taken over
        with pytest.raises(LeaseLostError) as caught:
            await store.commit(claimed([new_event("X", 1)], "a", (0, 1), (1, 1)))
        assert caught.value.partitions == (0,)
        # The epoch decides, not the owner's name: b claiming the old epoch is refused too.
        with pytest.raises(LeaseLostError):
            await store.commit(claimed([new_event("X", 1)], "b", (0, 1)))  # an old epoch
        assert await store.read_all() == []
        await store.commit(claimed([new_event("X", 1)], "b", (0, 2)))
        assert len(await store.read_all()) == 1

    async def test_a_released_partition_refuses_its_last_owners_commit(
        self, store: EventStore
    ) -> None:
        leases = leases_of(store)
        await leases.ensure_partitions([0])
        await leases.acquire(0, "a", TTL)
        await leases.release(0, "a", 1)
        with pytest.raises(LeaseLostError):
            await store.commit(claimed([new_event("X", 1)], "a", (0, 1)))

    async def test_membership_lists_the_live_members_and_forgets_one_that_leaves(
        self, store: EventStore
    ) -> None:
        leases = leases_of(store)
        await leases.heartbeat("b", "http://b", TTL)
        members = await leases.heartbeat("a", "http://a", TTL)
        assert [(m.member_id, m.url) for m in members] == [("a", "http://a"), ("b", "http://b")]
        await leases.heartbeat("c", "http://c", SHORT)
        await asyncio.sleep(SHORT + 0.2)
        await leases.leave("b")
        assert [m.member_id for m in await leases.heartbeat("a", "http://a2", TTL)] == ["a"]
