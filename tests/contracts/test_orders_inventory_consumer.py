"""Consumer side of orders <- inventory events: each message of the pact is fed to orders' REAL
decoding path (the kit's ``decode_envelope``, then ``fact_of`` of the source orders subscribes
to), which must turn it into the saga fact it stands for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pact import Pact, match
from tests.contracts import inventory_events as c
from tests.contracts.pactfiles import assert_committed

from stockflow.orders.domain.model import Rejected, Reserved
from stockflow.orders.entrypoints.consumers import SOURCES
from stockflow.orders.service_layer.handlers import InventoryFact
from stockflow_kit.messaging import decode_envelope

TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
(INVENTORY_SOURCE,) = SOURCES


def envelope(event_type: str, data: dict[str, object]) -> dict[str, object]:
    return {
        "id": match.uuid("5b0c1f3e-8a4d-4c2b-9e6f-1a2b3c4d5e6f"),
        "type": event_type,
        "source": "inventory",
        "subject": match.str(c.SKU),
        "sequence": match.int(2),
        "schema_version": match.int(1),
        "occurred_at": match.regex("2026-01-01T00:00:00Z", regex=TIMESTAMP),
        "data": data,
    }


def inventory_events_pact() -> Pact:
    pact = Pact(c.CONSUMER, c.PROVIDER).with_specification("V4")
    topic = {"topic": INVENTORY_SOURCE.topic}
    (
        pact.upon_receiving(c.RESERVED, "Async")
        .given(c.STATE_IN_STOCK)
        .with_body(
            envelope(
                "StockReserved",
                {
                    "sku": match.str(c.SKU),
                    "order_id": match.str(c.ORDER_ID),
                    "qty": match.int(c.QTY),
                },
            ),
            content_type="application/json",
        )
        .with_metadata(topic)
    )
    (
        pact.upon_receiving(c.REJECTED, "Async")
        .given(c.STATE_SHORT)
        .with_body(
            envelope(
                "ReservationRejected",
                {
                    "sku": match.str(c.SKU),
                    "order_id": match.str(c.ORDER_ID),
                    "reason": match.str("insufficient_stock"),
                    "lines": match.each_like(
                        {
                            "sku": match.str(c.SKU),
                            "requested": match.int(c.QTY),
                            "available": match.int(1),
                        },
                        min=1,
                    ),
                },
            ),
            content_type="application/json",
        )
        .with_metadata(topic)
    )
    return pact


def test_orders_consumes_inventory_events(tmp_path: Path) -> None:
    pact = inventory_events_pact()
    facts: list[InventoryFact | None] = []

    def handler(body: Any, metadata: dict[str, Any]) -> None:
        assert metadata["topic"] == INVENTORY_SOURCE.topic
        raw = body.encode() if isinstance(body, str) else bytes(body)
        facts.append(INVENTORY_SOURCE.translate(decode_envelope(raw)))

    pact.verify(handler, "Async")  # raises PactVerificationError when the handler fails
    assert sorted(facts, key=repr) == sorted(
        [
            InventoryFact(c.ORDER_ID, Reserved(c.SKU, c.QTY)),
            InventoryFact(c.ORDER_ID, Rejected("insufficient_stock")),
        ],
        key=repr,
    )
    assert_committed(pact, tmp_path, c.CONSUMER, c.PROVIDER)
