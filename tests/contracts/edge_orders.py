"""The edge -> orders HTTP contract: what edge's real code sends to orders and needs back.

Shared by the consumer test (which generates the pact) and the provider test (which sets up
the states through orders' own API). Order ids are deterministic: orders derives an order's id
from the customer's ``Idempotency-Key`` (the kit's ``idempotency_message_id`` of the scope
``POST /orders|<customer>``), so a state "alice placed an order with key K" names one id.
"""

from __future__ import annotations

from typing import Final

from stockflow_kit.http import idempotency_message_id

CONSUMER: Final = "edge"
PROVIDER: Final = "orders"

PLACE_KEY: Final = "pact-place-1"
READ_KEY: Final = "pact-read-1"
OTHERS_KEY: Final = "pact-bob-1"
LINES: Final = [{"sku": "SKU-1", "qty": 2}]

STATE_NO_ORDERS: Final = "alice has placed no order"
STATE_ALICE_PLACED: Final = f"alice placed an order with key {READ_KEY}"
STATE_BOB_PLACED: Final = f"bob placed an order with key {OTHERS_KEY}"


def order_id(customer: str, key: str) -> str:
    """The id orders gives the order *customer* placed with *key*."""
    return idempotency_message_id(f"POST /orders|{customer}", key)
