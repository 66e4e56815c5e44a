"""notifications <- inventory events: the ``LowStockDetected`` envelope on
``inventory.events`` (staff's webhooks get it; every other inventory event is ignored).

Consumer side: the pact's message is fed to notifications' REAL decoding path
(``decode_envelope``, then the ``translate`` of its source on ``inventory.events``), which must
yield the event item with the SKU, what is available and the threshold. Provider side: the
inventory's REAL decision: ``decide_reservation`` of 3 on a SKU with 12 on hand, which
crosses the default low-stock threshold (10) and so decides ``StockReserved`` then
``LowStockDetected``; the latter goes through the event codec, the relay's ``envelope_of`` and
``encode_envelope`` (:func:`tests.contracts.inventory_events.message`). A renamed field fails
verification, an added one passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pact import Pact, Verifier, match
from pact.types import Message
from tests.contracts.inventory_events import Edit, message, unchanged
from tests.contracts.pactfiles import assert_committed, committed
from tests.contracts.providers import verify

from stockflow.contracts.inventory_commands import EVENTS_TOPIC
from stockflow.inventory.domain.model import (
    DEFAULT_LOW_STOCK_THRESHOLD,
    StockState,
    decide_reservation,
)
from stockflow.notifications.entrypoints.consumers import SOURCES as NOTIFICATIONS_SOURCES
from stockflow.notifications.service_layer.handlers import EventItem
from stockflow_kit.messaging import decode_envelope

CONSUMER: Final = "notifications"
PROVIDER: Final = "inventory"
LOW_STOCK: Final = "a LowStockDetected event"
SKU: Final = "SKU-1"
ON_HAND: Final = 12
RESERVED: Final = 3
STATE: Final = (
    f"{SKU} has {ON_HAND} on hand and the low-stock threshold is {DEFAULT_LOW_STOCK_THRESHOLD}"
)
TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
(INVENTORY_SOURCE,) = (s for s in NOTIFICATIONS_SOURCES if s.topic == EVENTS_TOPIC)


def inventory_events_pact() -> Pact:
    pact = Pact(CONSUMER, PROVIDER).with_specification("V4")
    (
        pact.upon_receiving(LOW_STOCK, "Async")
        .given(STATE)
        .with_body(
            {
                "id": match.uuid("5b0c1f3e-8a4d-4c2b-9e6f-1a2b3c4d5e70"),
                "type": "LowStockDetected",
                "source": "inventory",
                "subject": match.str(SKU),
                "sequence": match.int(2),
                "schema_version": match.int(1),
                "occurred_at": match.regex("2026-01-01T00:00:00Z", regex=TIMESTAMP),
                "data": {
                    "sku": match.str(SKU),
                    "available": match.int(ON_HAND - RESERVED),
                    "threshold": match.int(DEFAULT_LOW_STOCK_THRESHOLD),
                },
            },
            content_type="application/json",
        )
        .with_metadata({"topic": EVENTS_TOPIC})
    )
    return pact


def test_notifications_consumes_low_stock_detected(tmp_path: Path) -> None:
    pact = inventory_events_pact()
    items: list[EventItem] = []

    def handler(body: Any, metadata: dict[str, Any]) -> None:
        assert metadata["topic"] == INVENTORY_SOURCE.topic
        raw = body.encode() if isinstance(body, str) else bytes(body)
        item = INVENTORY_SOURCE.translate(decode_envelope(raw))
        assert item is not None, "notifications ignored the LowStockDetected"
        items.append(item)

    pact.verify(handler, "Async")  # raises PactVerificationError when the handler fails
    (item,) = items
    assert (item.type, item.customer_id) == ("LowStockDetected", "")  # staff only: no owner
    assert item.data == {"sku": SKU, "available": 9, "threshold": 10}
    assert_committed(pact, tmp_path, CONSUMER, PROVIDER)


def produce(edit: Edit) -> Message:
    state = StockState(sku=SKU, on_hand=ON_HAND, version=1)
    decided = decide_reservation({SKU: state}, "order-pact-4", [(SKU, RESERVED)])
    assert [type(e).__name__ for e in decided] == ["StockReserved", "LowStockDetected"]
    return message(decided[1], sequence=state.version + 2, edit=edit)


def verifier_for(edit: Edit) -> Verifier:
    def state(action: str, parameters: dict[str, Any] | None = None) -> None:
        del action, parameters  # the producer decides on the stock the state names

    return (
        Verifier(PROVIDER)
        .message_handler({LOW_STOCK: lambda *_, **__: produce(edit)})
        .state_handler({STATE: state}, teardown=True)
        .add_source(committed(CONSUMER, PROVIDER))
    )


def test_inventory_events_honour_the_notifications_pact() -> None:
    passed, output = verify(verifier_for(unchanged))
    assert passed, output
    assert LOW_STOCK in output


def test_a_renamed_field_fails_verification() -> None:
    def available_renamed(data: dict[str, Any]) -> dict[str, Any]:
        rest = {k: v for k, v in data.items() if k != "available"}
        return {**rest, "available_qty": data["available"]}

    passed, output = verify(verifier_for(available_renamed))
    assert not passed, output
    assert "$.data -> Actual map is missing the following keys: available" in output, output


def test_a_removed_field_fails_verification() -> None:
    passed, output = verify(
        verifier_for(lambda data: {k: v for k, v in data.items() if k != "threshold"})
    )
    assert not passed, output
    assert "missing the following keys: threshold" in output, output


def test_an_added_optional_field_passes_verification() -> None:
    passed, output = verify(verifier_for(lambda data: {**data, "warehouse": "main"}))
    assert passed, output
