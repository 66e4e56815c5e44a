"""What ``stockflow bench orders`` sends over HTTP: stock receipts, and the placements.

The calls are the services' internal API, as edge makes them: the service credential
(``Authorization: Bearer``), the customer in ``X-Stockflow-User``, an ``Idempotency-Key`` per
order. A placement shed with 503 is sent again with the same key after its ``Retry-After``
(capped at 0.5 s, full jitter), as a well-behaved client does; its send time stays the first
attempt's, so the latency figures include the shedding.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import httpx

from stockflow.bench.order_mix import OrderMix
from stockflow.contracts.orders import USER_HEADER

__all__ = ["Placements", "place_orders", "receive_stock"]

RETRY_AFTER_CAP: Final = 0.5
MAX_ATTEMPTS: Final = 200


@dataclass
class Placements:
    """What the placement phase saw, per order index (the mix's order)."""

    sent_at: dict[int, float] = field(default_factory=dict)
    """First attempt's send time (Unix seconds, this machine's clock)."""
    accepted_at: dict[int, float] = field(default_factory=dict)
    """When the 202 arrived."""
    order_ids: dict[int, str] = field(default_factory=dict)
    shed: int = 0
    """503 answers (each retried with the same key)."""
    failed: dict[int, str] = field(default_factory=dict)
    """Orders never accepted: their last status or error."""


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("Retry-After", "0.1")), RETRY_AFTER_CAP)
    except ValueError:  # an HTTP date: not what the services send
        return RETRY_AFTER_CAP


async def receive_stock(
    http: httpx.AsyncClient, inventory_url: str, token: str, stock: Mapping[str, int], run: str
) -> None:
    """``POST /inventory/{sku}/receipts`` for every SKU (201 each, or raise)."""
    for sku, qty in stock.items():
        response = await http.post(
            f"{inventory_url}/inventory/{sku}/receipts",
            json={"qty": qty, "reference": f"bench {run}"},
            headers={**auth(token), "Idempotency-Key": f"bench-{run}-receipt-{sku}"},
        )
        if response.status_code != 201:
            raise RuntimeError(
                f"receipt for {sku} answered {response.status_code}: {response.text}"
            )


async def place_orders(
    http: httpx.AsyncClient,
    orders_url: str,
    token: str,
    mix: OrderMix,
    *,
    run: str,
    concurrency: int,
    accepted: Callable[[int], None] = lambda _index: None,
) -> Placements:
    """Place every order of *mix* from *concurrency* closed-loop senders.

    *accepted* is called with each order's index on its 202 (progress).
    """
    placements = Placements()
    queue = iter(range(len(mix.orders)))

    async def sender() -> None:
        for index in queue:  # one shared iterator: each order is taken once
            await _place(index)

    async def _place(index: int) -> None:
        headers = {
            **auth(token),
            USER_HEADER: mix.customers[index],
            "Idempotency-Key": f"bench-{run}-{index}",
        }
        body = {"lines": [{"sku": sku, "qty": qty} for sku, qty in mix.orders[index]]}
        placements.sent_at[index] = time.time()
        outcome = "never sent"
        for _attempt in range(MAX_ATTEMPTS):
            try:
                response = await http.post(f"{orders_url}/orders", json=body, headers=headers)
            except httpx.TransportError as error:
                outcome = f"{type(error).__name__}: {error}"
                await asyncio.sleep(RETRY_AFTER_CAP * random.random())
                continue
            if response.status_code == 202:
                placements.accepted_at[index] = time.time()
                placements.order_ids[index] = response.json()["id"]
                accepted(index)
                return
            outcome = f"{response.status_code}: {response.text[:200]}"
            if response.status_code != 503:
                break
            placements.shed += 1
            await asyncio.sleep(_retry_after(response) * random.random())
        placements.failed[index] = outcome

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return placements
