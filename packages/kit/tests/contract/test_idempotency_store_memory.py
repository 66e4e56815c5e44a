"""The Idempotency-Key store contract, run against the in-memory store."""

from __future__ import annotations

import pytest

from stockflow_kit.http import InMemoryIdempotencyStore
from stockflow_kit.http.testing import IdempotencyStoreContract


class TestInMemoryIdempotencyStore(IdempotencyStoreContract):
    durable = False
    not_durable_reason = "the in-memory store forgets everything when it is dropped"
    atomic = False
    not_atomic_reason = "the in-memory store has no transactions to write in"

    @pytest.fixture
    def store(self) -> InMemoryIdempotencyStore:
        return InMemoryIdempotencyStore()
