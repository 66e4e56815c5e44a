"""``IdempotencyRecordsContract``: stored responses per (scope, Idempotency-Key), put on their
own or committed with their effect (``IdempotencyRecords``, ``CommitBatch.idempotency``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.inventory.contract.event_store_contract import StoreContract, batch, new_event, row

from stockflow.inventory.service_layer.ports import (
    ConcurrencyError,
    EventStore,
    Fence,
    IdempotencyRecord,
    StaleFenceError,
)

SCOPE = "POST /inventory/{sku}/receipts caller-1"
CREATED = 1_795_000_000.25


def record(
    key: str = "k-1",
    *,
    scope: str = SCOPE,
    request_hash: str = "h1",
    status: int = 201,
    body: bytes = b'{"sku":"A"}',
    created_at: float = CREATED,
) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope=scope,
        key=key,
        request_hash=request_hash,
        status=status,
        body=body,
        media_type="application/json" if status < 400 else "application/problem+json",
        created_at=created_at,
    )


class IdempotencyRecordsContract(StoreContract):
    async def test_a_missing_record_is_none(self, store: EventStore) -> None:
        assert await store.get(SCOPE, "k-1") is None

    async def test_a_record_put_reads_back_with_every_field(self, store: EventStore) -> None:
        stored = record(status=409, body=b'{"title":"Conflict"}')
        assert await store.put(stored) == stored
        assert await store.get(SCOPE, "k-1") == stored

    async def test_the_first_put_of_a_key_wins(self, store: EventStore) -> None:
        first = record()
        assert await store.put(first) == first
        assert await store.put(record(request_hash="h2", status=500, body=b"{}")) == first
        assert await store.get(SCOPE, "k-1") == first

    async def test_the_same_key_in_two_scopes_is_two_records(self, store: EventStore) -> None:
        mine = record()
        theirs = record(scope="POST /inventory/{sku}/receipts caller-2", request_hash="h2")
        assert await store.put(mine) == mine
        assert await store.put(theirs) == theirs
        assert await store.get(mine.scope, "k-1") == mine
        assert await store.get(theirs.scope, "k-1") == theirs
        assert await store.get("POST /inventory/{sku}/adjustments caller-1", "k-1") is None

    async def test_a_record_in_a_committed_batch_is_stored(self, store: EventStore) -> None:
        committed = record()
        await store.commit(
            batch(
                [new_event("A", 1)],
                processed=["m-1"],
                stock=[row("A", 1, 1)],
                fence=Fence(key="p-0", expected_version=0),
                idempotency=[committed],
            )
        )
        assert await store.get(SCOPE, "k-1") == committed

    async def test_a_record_in_a_failed_batch_is_not_stored(self, store: EventStore) -> None:
        await store.commit(batch(fence=Fence(key="p-0", expected_version=0)))
        with pytest.raises(StaleFenceError):
            await store.commit(
                batch(
                    [new_event("A", 1)],
                    fence=Fence(key="p-0", expected_version=0),
                    idempotency=[record()],
                )
            )
        with pytest.raises(ConcurrencyError):
            await store.commit(batch([new_event("A", 2)], idempotency=[record("k-2")]))
        assert await store.get(SCOPE, "k-1") is None
        assert await store.get(SCOPE, "k-2") is None

    async def test_a_record_already_stored_does_not_fail_the_batch_that_repeats_it(
        self, store: EventStore
    ) -> None:
        first = record()
        await store.put(first)
        again = record(request_hash="h2", body=b'{"other":1}')
        fresh = record("k-2")
        await store.commit(
            batch([new_event("A", 1)], processed=["m-1"], idempotency=[again, fresh, fresh])
        )
        assert await store.stream_version("A") == 1
        assert await store.processed(["m-1"]) == {"m-1"}
        assert await store.get(SCOPE, "k-1") == first
        assert await store.get(SCOPE, "k-2") == fresh

    async def test_the_first_record_of_a_key_in_one_batch_wins(self, store: EventStore) -> None:
        first = record()
        await store.commit(batch(idempotency=[first, record(request_hash="h2")]))
        assert await store.get(SCOPE, "k-1") == first

    async def test_prune_forgets_only_records_created_before_the_cutoff(
        self, store: EventStore
    ) -> None:
        old = [record("k-1", created_at=CREATED - 7200), record("k-2", created_at=CREATED - 3601)]
        young = record("k-3", created_at=CREATED)
        await store.commit(batch(idempotency=[*old, young]))
        assert await store.prune(CREATED - 3600) == 2
        assert [await store.get(SCOPE, k) for k in ("k-1", "k-2", "k-3")] == [None, None, young]
        assert await store.prune(CREATED - 3600) == 0

    async def test_a_reopened_store_keeps_its_records(
        self, store: EventStore, open_store: Callable[[], EventStore]
    ) -> None:
        put, committed = record("k-1"), record("k-2")
        await store.put(put)
        await store.commit(batch([new_event("A", 1)], idempotency=[committed]))
        reopened = await self.reopen(store, open_store)
        try:
            assert await reopened.get(SCOPE, "k-1") == put
            assert await reopened.get(SCOPE, "k-2") == committed
        finally:
            await reopened.close()
