"""``StockProjectionContract``: the stock rows, upserted by commits and replaced by a rebuild
(``StockReader`` and ``StockProjection``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.inventory.contract.event_store_contract import StoreContract, batch, new_event, row

from stockflow.inventory.service_layer.ports import ConcurrencyError, EventStore


class StockProjectionContract(StoreContract):
    async def test_an_empty_store_has_no_stock(self, store: EventStore) -> None:
        assert await store.get_stock("A") is None
        assert await store.all_stock() == []

    async def test_stock_rows_are_committed_with_the_events(self, store: EventStore) -> None:
        await store.commit(batch([new_event("A", 1)], stock=[row("A", 5, 1)]))
        await store.commit(
            batch(
                [new_event("A", 2), new_event("B", 1)],
                stock=[row("B", 3, 1), row("A", 5, 2, reserved=2)],
            )
        )
        assert await store.get_stock("A") == row("A", 5, 2, reserved=2)
        assert await store.all_stock() == [row("A", 5, 2, reserved=2), row("B", 3, 1)]
        assert await store.projection_checkpoint() == (await store.read_all())[-1].position

    async def test_the_last_row_of_a_sku_in_a_batch_wins(self, store: EventStore) -> None:
        await store.commit(batch([new_event("A", 1)], stock=[row("A", 1, 1), row("A", 2, 1)]))
        assert await store.all_stock() == [row("A", 2, 1)]

    async def test_stock_rows_and_checkpoint_roll_back_with_a_failed_commit(
        self, store: EventStore
    ) -> None:
        checkpoint = await store.commit(batch([new_event("A", 1)], stock=[row("A", 5, 1)]))
        with pytest.raises(ConcurrencyError):
            await store.commit(
                batch([new_event("B", 1), new_event("A", 1)], stock=[row("A", 9, 2)])
            )
        assert await store.all_stock() == [row("A", 5, 1)]
        assert await store.projection_checkpoint() == checkpoint

    async def test_replace_stock_swaps_every_row_and_sets_the_checkpoint(
        self, store: EventStore
    ) -> None:
        await store.commit(
            batch([new_event("A", 1), new_event("B", 1)], stock=[row("A", 9, 1), row("B", 9, 1)])
        )
        last = await store.commit(batch([new_event("C", 1)], stock=[row("C", 9, 1)]))
        await store.replace_stock([row("C", 3, 1), row("A", 1, 1), row("A", 2, 1)], checkpoint=last)
        assert await store.all_stock() == [row("A", 2, 1), row("C", 3, 1)]
        assert await store.get_stock("B") is None
        assert await store.projection_checkpoint() == last
        assert await store.checkpoint("projection") == last

    async def test_replace_stock_may_empty_the_projection_of_an_empty_log(
        self, store: EventStore
    ) -> None:
        await store.commit(batch(stock=[row("A", 1, 1)]))
        await store.replace_stock([], checkpoint=0)
        assert await store.all_stock() == []
        assert await store.projection_checkpoint() == 0

    async def test_replace_stock_is_refused_when_events_follow_its_checkpoint(
        self, store: EventStore
    ) -> None:
        folded_up_to = await store.commit(batch([new_event("A", 1)], stock=[row("A", 1, 1)]))
        last = await store.commit(batch([new_event("A", 2)], stock=[row("A", 2, 2)]))
        with pytest.raises(ConcurrencyError):
            await store.replace_stock([row("A", 7, 1)], checkpoint=folded_up_to)
        assert await store.all_stock() == [row("A", 2, 2)]
        assert await store.projection_checkpoint() == last

    async def test_replace_stock_refuses_a_checkpoint_beyond_the_log(
        self, store: EventStore
    ) -> None:
        last = await store.commit(batch([new_event("A", 1)], stock=[row("A", 1, 1)]))
        with pytest.raises(ValueError, match="beyond"):
            await store.replace_stock([row("A", 7, 1)], checkpoint=last + 1)
        assert await store.all_stock() == [row("A", 1, 1)]
        assert await store.projection_checkpoint() == last

    async def test_commits_after_a_replacement_upsert_as_before(self, store: EventStore) -> None:
        last = await store.commit(batch([new_event("A", 1)], stock=[row("A", 1, 1)]))
        await store.replace_stock([row("A", 1, 1)], checkpoint=last)
        after = await store.commit(batch([new_event("A", 2)], stock=[row("A", 3, 2)]))
        assert await store.all_stock() == [row("A", 3, 2)]
        assert await store.projection_checkpoint() == after > last

    async def test_a_reopened_store_keeps_its_stock(
        self, store: EventStore, open_store: Callable[[], EventStore]
    ) -> None:
        await store.commit(batch([new_event("A", 1), new_event("A", 2)], stock=[row("A", 2, 2)]))
        reopened = await self.reopen(store, open_store)
        try:
            assert await reopened.all_stock() == [row("A", 2, 2)]
        finally:
            await reopened.close()

    async def test_a_replaced_projection_outlives_the_store(
        self, store: EventStore, open_store: Callable[[], EventStore]
    ) -> None:
        await store.commit(batch([new_event("A", 1)], stock=[row("A", 2, 1)]))
        last = await store.commit(batch([new_event("B", 1)], stock=[row("B", 1, 1)]))
        await store.replace_stock([row("A", 2, 1), row("B", 5, 1)], checkpoint=last)
        reopened = await self.reopen(store, open_store)
        try:
            assert await reopened.all_stock() == [row("A", 2, 1), row("B", 5, 1)]
            assert await reopened.projection_checkpoint() == last
        finally:
            await reopened.close()
