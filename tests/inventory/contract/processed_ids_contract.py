"""``ProcessedIdsContract``: the inbox of every store (``ProcessedIds``), written by commits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from tests.inventory.contract.event_store_contract import T0, StoreContract, batch, new_event

from stockflow.inventory.service_layer.ports import (
    ConcurrencyError,
    DuplicateMessageError,
    EventStore,
)


class ProcessedIdsContract(StoreContract):
    async def test_an_empty_store_has_processed_nothing(self, store: EventStore) -> None:
        assert await store.processed(["m-1", "m-2"]) == set()

    async def test_processed_ids_are_recorded_with_the_events(self, store: EventStore) -> None:
        await store.commit(batch([new_event("A", 1)], processed=["m-1", "m-2"]))
        assert await store.processed(["m-1", "m-2", "m-3"]) == {"m-1", "m-2"}
        assert await store.processed([]) == set()

    async def test_processed_ids_are_not_recorded_when_the_commit_fails(
        self, store: EventStore
    ) -> None:
        with pytest.raises(ConcurrencyError):
            await store.commit(batch([new_event("A", 2)], processed=["m-1", "m-2"]))
        await self.assert_untouched(store)

    async def test_an_id_already_processed_is_a_conflict_and_commits_nothing(
        self, store: EventStore
    ) -> None:
        await store.commit(batch(processed=["m-1"]))
        with pytest.raises(DuplicateMessageError):
            await store.commit(batch([new_event("A", 1)], processed=["m-2", "m-1"]))
        assert await store.read_all() == []
        assert await store.processed(["m-1", "m-2"]) == {"m-1"}

    async def test_prune_forgets_only_ids_processed_before_the_cutoff(
        self, store: EventStore
    ) -> None:
        await store.commit(batch(processed=["m-1", "m-2"], at=T0))
        await store.commit(batch(processed=["m-3"], at=T0 + timedelta(hours=2)))
        assert await store.prune_processed(T0 + timedelta(hours=1)) == 2
        assert await store.processed(["m-1", "m-2", "m-3"]) == {"m-3"}
        assert await store.prune_processed(T0 + timedelta(hours=1)) == 0

    async def test_a_reopened_store_keeps_its_processed_ids(
        self, store: EventStore, open_store: Callable[[], EventStore]
    ) -> None:
        await store.commit(batch([new_event("A", 1)], processed=["m-1"]))
        reopened = await self.reopen(store, open_store)
        try:
            assert await reopened.processed(["m-1", "m-2"]) == {"m-1"}
        finally:
            await reopened.close()
