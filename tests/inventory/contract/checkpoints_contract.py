"""``CheckpointsContract``: the projection checkpoint and the named ones (``Checkpoints``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.inventory.contract.event_store_contract import StoreContract, batch, new_event, row

from stockflow.inventory.service_layer.ports import EventStore


class CheckpointsContract(StoreContract):
    async def test_an_empty_store_has_its_checkpoints_at_zero(self, store: EventStore) -> None:
        assert await store.projection_checkpoint() == 0
        assert await store.checkpoint("projection") == 0
        assert await store.checkpoint("published") == 0

    async def test_a_batch_without_events_keeps_the_checkpoint(self, store: EventStore) -> None:
        checkpoint = await store.commit(batch([new_event("A", 1)], stock=[row("A", 1, 1)]))
        assert await store.commit(batch(processed=["m-1"])) == checkpoint
        assert await store.projection_checkpoint() == checkpoint

    async def test_a_named_checkpoint_starts_at_zero_and_only_moves_forward(
        self, store: EventStore
    ) -> None:
        assert await store.checkpoint("published") == 0
        await store.save_checkpoint("published", 7)
        await store.save_checkpoint("published", 3)
        assert await store.checkpoint("published") == 7
        assert await store.checkpoint("other") == 0

    async def test_the_projection_checkpoint_cannot_be_saved_by_name(
        self, store: EventStore
    ) -> None:
        await store.commit(batch([new_event("A", 1)]))
        with pytest.raises(ValueError, match="projection"):
            await store.save_checkpoint("projection", 99)
        assert await store.checkpoint("projection") == await store.projection_checkpoint()

    async def test_a_reopened_store_keeps_its_checkpoints(
        self, store: EventStore, open_store: Callable[[], EventStore]
    ) -> None:
        checkpoint = await store.commit(batch([new_event("A", 1), new_event("A", 2)]))
        await store.save_checkpoint("published", 1)
        reopened = await self.reopen(store, open_store)
        try:
            assert await reopened.projection_checkpoint() == checkpoint
            assert await reopened.checkpoint("published") == 1
        finally:
            await reopened.close()
