"""Orders SIGKILLed mid-load on PostgreSQL + NATS JetStream: no accepted order is lost."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import httpx
import pytest
from tests.orders.integration.deployment import Client, Deployment, client, random_lines

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def place_until_answered(
    api: Client, lines: list[dict[str, object]], accepted: list[str]
) -> None:
    """Place one order, retrying with the same key through the outage, as edge would."""
    key = str(uuid.uuid4())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            response = await api.place(lines, key=key)
        except httpx.TransportError:
            await asyncio.sleep(0.2)
            continue
        if response.status_code == 202:
            accepted.append(response.json()["id"])
            return
        if response.status_code != 503:
            raise AssertionError(f"{response.status_code}: {response.text}")
        await asyncio.sleep(0.2)
    raise AssertionError("an order was never answered")


async def test_orders_killed_mid_load_and_restarted_loses_no_accepted_order(
    distributed: Deployment,
) -> None:
    await distributed.start("inventory")
    orders = await distributed.start("orders")
    skus = [f"SKU-K{n}" for n in range(5)]
    rng = random.Random(11)
    accepted: list[str] = []
    async with client(distributed) as api:
        for sku in skus:
            await api.receive(sku, 150)
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():
                await place_until_answered(api, random_lines(skus, rng), accepted)

        workers = [asyncio.create_task(worker()) for _ in range(8)]
        await asyncio.sleep(2.0)
        before_kill = len(accepted)
        orders.kill()
        await asyncio.sleep(1.0)
        await distributed.start("orders")
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*workers)
        assert before_kill > 0
        assert len(accepted) > before_kill

        settled = await api.settled(sorted(set(accepted)), within=30)
        assert len(settled) == len(set(accepted))  # every accepted order is there
        assert {o["status"] for o in settled.values()} <= {"CONFIRMED", "REJECTED"}
    distributed.assert_audit_clean()
