"""The event store contract, run against ``InMemoryEventStore``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.inventory.contract.event_store_contract import EventStoreContract

from stockflow.inventory.adapters.event_store.memory import InMemoryEventStore
from stockflow.inventory.service_layer.ports import EventStore


class TestInMemoryEventStore(EventStoreContract):
    durable = False

    @pytest.fixture
    def open_store(self) -> Callable[[], EventStore]:
        return InMemoryEventStore
