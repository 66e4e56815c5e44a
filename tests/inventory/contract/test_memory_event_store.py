"""Every role suite of the event store, run against ``InMemoryEventStore``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.inventory.contract.checkpoints_contract import CheckpointsContract
from tests.inventory.contract.event_log_contract import EventLogContract
from tests.inventory.contract.idempotency_contract import IdempotencyRecordsContract
from tests.inventory.contract.lease_store_contract import LeaseStoreContract
from tests.inventory.contract.processed_ids_contract import ProcessedIdsContract
from tests.inventory.contract.snapshots_contract import SnapshotsContract
from tests.inventory.contract.stock_projection_contract import StockProjectionContract

from stockflow.inventory.adapters.event_store.memory import InMemoryEventStore
from stockflow.inventory.service_layer.ports import EventStore


class InMemory:
    durable = False

    @pytest.fixture
    def open_store(self) -> Callable[[], EventStore]:
        return InMemoryEventStore


class TestInMemoryEventLog(InMemory, EventLogContract):
    pass


class TestInMemoryProcessedIds(InMemory, ProcessedIdsContract):
    pass


class TestInMemorySnapshots(InMemory, SnapshotsContract):
    pass


class TestInMemoryCheckpoints(InMemory, CheckpointsContract):
    pass


class TestInMemoryStockProjection(InMemory, StockProjectionContract):
    pass


class TestInMemoryIdempotencyRecords(InMemory, IdempotencyRecordsContract):
    pass


class TestInMemoryLeases(InMemory, LeaseStoreContract):
    pass
