"""Idempotency-Key answers survive a SIGKILL: the stored answer commits with the effect.

The hostile-user finding: SIGKILL the server while receipts with distinct keys are in flight;
after the restart, a retry of a key whose effect committed but whose answer was not yet saved,
sent with a DIFFERENT body, was answered 200 and took the key, and the genuine retry got 409.
Now every key whose effect committed has its answer committed with it: after the restart the
impostor gets 409, the genuine retry the first answer, and each receipt is applied once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from tests.inventory.crash.worker_process import Worker

pytestmark = pytest.mark.slow

RECEIPTS = 200


async def _send(client: httpx.AsyncClient, base: str, key: str, qty: int) -> int | None:
    try:
        response = await client.post(
            f"{base}/inventory/SKU-{key}/receipts",
            json={"qty": qty, "reference": key},
            headers={"Idempotency-Key": key},
        )
    except httpx.TransportError:
        return None  # the process died under it
    return response.status_code


async def test_a_killed_server_keeps_every_committed_key_with_its_answer(tmp_path: Path) -> None:
    env = {
        "INVENTORY_EVENT_STORE_URL": f"sqlite:///{tmp_path / 'inventory.sqlite3'}",
        "BUS_URL": f"sqlite:///{tmp_path / 'bus.sqlite3'}",
        "INVENTORY_PUBLISH_EVENTS": "false",
        # Every request in at once: admission control is not what this test is about.
        "INVENTORY_MAX_IN_FLIGHT": str(4 * RECEIPTS),
    }
    worker = Worker(env, tmp_path / "worker.log")
    keys = [f"k{i}" for i in range(RECEIPTS)]
    try:
        worker.start()
        await worker.wait_ready()
        base = f"http://127.0.0.1:{worker.port}"
        async with httpx.AsyncClient(timeout=10, headers=worker.auth) as client:
            sending = [asyncio.create_task(_send(client, base, key, 3)) for key in keys]
            for done, _ in enumerate(asyncio.as_completed(sending), 1):
                await _
                if done >= RECEIPTS // 4:  # some answered, most still in flight
                    break
            worker.kill()
            first = await asyncio.gather(*sending)
        assert any(code == 201 for code in first), "nothing committed before the kill"
        worker.start()
        await worker.wait_ready()
        async with httpx.AsyncClient(timeout=10, headers=worker.auth) as client:
            impostors = await asyncio.gather(*(_send(client, base, key, 7) for key in keys))
            genuine = await asyncio.gather(*(_send(client, base, key, 3) for key in keys))
            stock = {key: (await client.get(f"{base}/inventory/SKU-{key}")).json() for key in keys}
    finally:
        worker.kill()
    for key, before, impostor, retry in zip(keys, first, impostors, genuine, strict=True):
        row = stock[key]
        if row.get("on_hand") == 3:  # the first attempt's effect committed (before the kill)
            assert impostor == 409, f"{key}: another body took a committed key ({before})"
            assert retry in {200, 201}, f"{key}: the genuine retry got {retry}"
        else:  # it never committed: the impostor was first after the restart and owns the key
            assert impostor == 201, f"{key}: {impostor}"
            assert row.get("on_hand") == 7, f"{key}: {row}"
            assert retry == 409, f"{key}: {retry}"
        if before == 201:
            assert row.get("on_hand") == 3, f"{key} was answered 201 but holds {row}"
