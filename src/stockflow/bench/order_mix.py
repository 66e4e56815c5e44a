"""A deterministic order mix for ``stockflow bench orders``: who orders what, and the stock.

Same seed, same mix. Each order has 1 to 3 lines (uniform) of 1 to 3 units each (uniform);
each line picks a SKU the way ``bench events`` does (20 % of the SKUs get 80 % of the lines),
and lines that picked the same SKU are merged, so an order names each SKU once. The orders are
spread over :data:`CUSTOMERS` customers.

Stock: every SKU receives ``stock_factor`` times its *expected* demand, i.e. ``orders`` x the
mean units per order (2 x 2 = 4) x the SKU's probability of being picked by a line, rounded
up. The *actual* demand scatters around that expectation, so with the default factor 1.2 the
SKUs whose demand came out high run out near the end and some orders are rejected
(``insufficient_stock``); with a factor of 10 none is.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

__all__ = ["CUSTOMERS", "OrderMix", "generate_order_mix"]

HOT_SHARE: Final = 0.2
HOT_TRAFFIC: Final = 0.8
LINES: Final = (1, 3)
UNITS: Final = (1, 3)
CUSTOMERS: Final = 100

Lines = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class OrderMix:
    """The orders (lines and customer) in placement order, and each SKU's stock."""

    orders: list[Lines]
    customers: list[str]
    stock: dict[str, int]
    expected_demand: dict[str, float]

    @property
    def units_ordered(self) -> int:
        return sum(qty for lines in self.orders for _, qty in lines)

    @property
    def units_received(self) -> int:
        return sum(self.stock.values())


def _pick_probability(skus: list[str], hot: list[str]) -> dict[str, float]:
    cold = skus[len(hot) :]
    if not cold:
        return {sku: 1 / len(skus) for sku in skus}
    return {
        **{sku: HOT_TRAFFIC / len(hot) for sku in hot},
        **{sku: (1 - HOT_TRAFFIC) / len(cold) for sku in cold},
    }


def generate_order_mix(*, orders: int, skus: int, stock_factor: float, seed: int) -> OrderMix:
    """*orders* orders over *skus* SKUs, and ``stock_factor`` x each SKU's expected demand."""
    rng = random.Random(seed)
    names = [f"SKU-{i:06d}" for i in range(skus)]
    hot = names[: max(1, int(skus * HOT_SHARE))]
    cold = names[len(hot) :] or hot
    mix: list[Lines] = []
    customers: list[str] = []
    for _ in range(orders):
        wanted: dict[str, int] = {}
        for _line in range(rng.randint(*LINES)):
            pool = hot if rng.random() < HOT_TRAFFIC else cold
            sku = pool[rng.randrange(len(pool))]
            wanted[sku] = wanted.get(sku, 0) + rng.randint(*UNITS)
        mix.append(tuple(sorted(wanted.items())))
        customers.append(f"customer-{rng.randrange(CUSTOMERS):03d}")
    units_per_order = (sum(LINES) / 2) * (sum(UNITS) / 2)
    expected = {
        sku: orders * units_per_order * p for sku, p in _pick_probability(names, hot).items()
    }
    stock = {sku: max(1, math.ceil(stock_factor * demand)) for sku, demand in expected.items()}
    return OrderMix(orders=mix, customers=customers, stock=stock, expected_demand=expected)
