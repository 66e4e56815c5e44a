"""One inventory service (``bootstrap.build``, in this process) on a private PostgreSQL that is
stopped under it and started again: commands wait for the database instead of failing, the
readiness probe reports the outage, and the relay carries on afterwards."""

from __future__ import annotations

import asyncio
import uuid
from typing import Literal

import pytest
import stamina
from tests.deadlines import within
from tests.inventory.crash.private_servers import PrivatePostgres

from stockflow.contracts.inventory_commands import EVENTS_TOPIC
from stockflow.inventory.bootstrap import build
from stockflow.inventory.domain.commands import ReceiveStock
from stockflow.inventory.settings import InventorySettings
from stockflow_kit.messaging import InMemoryBus

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_command_sent_while_postgres_is_down_is_applied_once_it_is_back(
    private_postgres: PrivatePostgres, mode: Literal["fast", "immediate"]
) -> None:
    # The server is really away for a while: the store's reconnect backoff must really wait
    # (test mode would make its attempts back-to-back and use them up at once).
    stamina.set_testing(False)
    settings = InventorySettings(
        event_store_url=private_postgres.url,
        event_store_schema=f"inv_{uuid.uuid4().hex[:10]}",
        bus_url="memory://",
        batch_wait=0.01,
    )
    bus = InMemoryBus()
    await bus.start()
    events = await bus.subscribe(EVENTS_TOPIC, "test-events")
    service = build(settings, bus=bus)
    async with within(20, "starting the service"):
        await service.start()
    try:
        async with within(10, "the first command"):
            first = await service.writer.submit(ReceiveStock(sku="A", qty=3))
        assert first.status == "applied"

        async with within(30, f"pg_ctl stop -m {mode}"):
            await asyncio.to_thread(private_postgres.stop, mode)
        pending = asyncio.create_task(service.writer.submit(ReceiveStock(sku="A", qty=4)))
        async with within(5, "the readiness probe"):
            reason = await service.readiness()  # takes its 2 s probe timeout: the store retries
        assert reason is not None
        assert reason.startswith("event store: ")  # its probe: unreachable or no answer
        assert not pending.done(), "the command did not wait for the database"
        async with within(30, "pg_ctl start"):
            await asyncio.to_thread(private_postgres.start)

        async with within(15, "the command sent during the outage"):
            second = await pending
        assert second.status == "applied"
        async with within(5, "the readiness probe after the outage"):
            assert await service.readiness() is None
        row = await service.store.get_stock("A")
        assert row is not None
        assert (row.on_hand, row.version) == (7, 2)
        published: list[int | None] = []
        for _ in range(5):  # the relay came back from the outage (its backoff: up to 5 s)
            published += [d.envelope.sequence for d in await events.fetch(10, 2.0)]
            if len(published) >= 2:
                break
        assert published == [1, 2]
    finally:
        async with within(45, "stopping the service"):
            await service.stop()
        await bus.close()
