"""The event store contract, run against ``PostgresEventStore`` (one fresh schema per test)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from tests.inventory.contract.event_store_contract import EventStoreContract

from stockflow.inventory.adapters.event_store.postgres import PostgresEventStore
from stockflow.inventory.service_layer.ports import EventStore


@pytest.mark.integration
class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def open_store(self, postgres_url: str) -> Callable[[], EventStore]:
        schema = f"inventory_{uuid.uuid4().hex[:12]}"
        return lambda: PostgresEventStore(postgres_url, schema=schema)


def test_a_schema_name_that_is_not_a_plain_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="identifier"):
        PostgresEventStore("postgresql://unused", schema='x"; DROP TABLE events; --')
