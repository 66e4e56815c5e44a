"""``IdempotencyRecordsContract``: stored responses per (scope, Idempotency-Key), put on their
own or committed with their effect (``IdempotencyRecords``, ``CommitBatch.idempotency``).

The event stores are Idempotency-Key stores like any other: the kit's ONE contract suite
(:class:`~stockflow_kit.http.testing.IdempotencyStoreContract`) runs against each of them, its
"caller's transaction" being a ``CommitBatch``; the cases here add what only a batch can do."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest
from tests.inventory.contract.event_store_contract import StoreContract, batch, new_event, row

from stockflow.inventory.service_layer.ports import (
    ConcurrencyError,
    EventStore,
    Fence,
    IdempotencyRecord,
    StaleFenceError,
)
from stockflow_kit.http import IdempotencyStore
from stockflow_kit.http.testing import IdempotencyStoreContract, make_record

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
    """The kit's :func:`make_record` with this suite's defaults (problems for 4xx/5xx)."""
    return make_record(
        key,
        scope=scope,
        request_hash=request_hash,
        status=status,
        body=body,
        media_type="application/json" if status < 400 else "application/problem+json",
        created_at=created_at,
    )


class IdempotencyRecordsContract(StoreContract, IdempotencyStoreContract):
    atomic = True
    not_durable_reason = "not a durable store: nothing outlives an instance"

    @pytest.fixture(autouse=True)
    def _remember_opener(self, open_store: Callable[[], EventStore]) -> None:
        self._open_store = open_store

    @contextlib.asynccontextmanager
    async def reopened(self, store: IdempotencyStore) -> AsyncIterator[IdempotencyStore]:
        again = await self.reopen(cast(EventStore, store), self._open_store)
        try:
            yield again
        finally:
            await again.close()

    async def add_in_transaction(
        self, store: IdempotencyStore, record: IdempotencyRecord, *, commit: bool
    ) -> bool:
        """The caller's transaction of an event store is a ``CommitBatch``: one that commits,
        or one that fails on a stale fence after its record was written in it."""
        events = cast(EventStore, store)
        if not commit:
            await events.commit(batch(fence=Fence(key="rollback", expected_version=0)))
            with pytest.raises(StaleFenceError):
                await events.commit(
                    batch(idempotency=[record], fence=Fence(key="rollback", expected_version=0))
                )
            return True
        free = await events.get(record.scope, record.key) is None
        await events.commit(batch(idempotency=[record]))
        return free

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
