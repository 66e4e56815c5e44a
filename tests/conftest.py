"""Fixtures for the application's tests (the kit's suite has its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stockflow_kit.messaging import InMemoryBus


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    """A started in-memory bus, closed after the test."""
    bus = InMemoryBus()
    await bus.start()
    yield bus
    await bus.close()
