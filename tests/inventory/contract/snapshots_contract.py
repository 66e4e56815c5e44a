"""``SnapshotsContract``: how every store keeps the latest snapshot per stream (``Snapshots``)."""

from __future__ import annotations

from collections.abc import Callable

from tests.inventory.contract.event_store_contract import StoreContract

from stockflow.inventory.service_layer.ports import EventStore, Snapshot


class SnapshotsContract(StoreContract):
    async def test_an_empty_store_has_no_snapshots(self, store: EventStore) -> None:
        assert await store.load_snapshots() == []

    async def test_snapshots_round_trip_and_the_latest_replaces(self, store: EventStore) -> None:
        await store.save_snapshots(
            [
                Snapshot(stream_id="B", version=3, state=b"b3"),
                Snapshot(stream_id="A", version=1, state=b"a1"),
            ]
        )
        await store.save_snapshots([Snapshot(stream_id="A", version=7, state=b"a7")])
        loaded = sorted(await store.load_snapshots(), key=lambda s: s.stream_id)
        assert loaded == [
            Snapshot(stream_id="A", version=7, state=b"a7"),
            Snapshot(stream_id="B", version=3, state=b"b3"),
        ]

    async def test_a_reopened_store_keeps_its_snapshots(
        self, store: EventStore, open_store: Callable[[], EventStore]
    ) -> None:
        await store.save_snapshots([Snapshot(stream_id="A", version=2, state=b"a2")])
        reopened = await self.reopen(store, open_store)
        try:
            assert await reopened.load_snapshots() == [
                Snapshot(stream_id="A", version=2, state=b"a2")
            ]
        finally:
            await reopened.close()
