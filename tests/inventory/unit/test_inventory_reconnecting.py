"""``reconnecting``: a lost connection is retried within the budget, and one attempt that hangs
counts as lost (the retry budget alone would not end it)."""

from __future__ import annotations

import asyncio

import pytest

from stockflow.inventory.adapters.event_store.postgres_reconnect import reconnecting
from stockflow.inventory.service_layer.ports import EventStoreUnavailableError


class Flaky:
    reconnect_timeout = 1.0
    attempt_timeout = 0.05

    def __init__(self, outcomes: list[str]) -> None:
        self.outcomes = outcomes
        self.calls = 0

    @reconnecting
    async def read(self) -> str:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "hang":
            await asyncio.Event().wait()
        if outcome == "refused":
            raise ConnectionRefusedError(111, "Connect call failed")
        return outcome


async def test_an_attempt_that_hangs_is_abandoned_and_tried_again() -> None:
    store = Flaky(["hang", "refused", "ok"])
    assert await asyncio.wait_for(store.read(), 5) == "ok"
    assert store.calls == 3


async def test_attempts_that_keep_hanging_end_with_unavailable() -> None:
    store = Flaky(["hang"] * 1000)
    store.reconnect_timeout = 0.3
    with pytest.raises(EventStoreUnavailableError, match=r"Flaky\.read"):
        await asyncio.wait_for(store.read(), 5)
