"""notifications <- orders events: every order event on ``orders.events`` (notifications
consumes them all: each one tells the order's owner something, and goes to the webhooks
subscribed to its type).

Consumer side: the pact's messages are fed to notifications' REAL decoding path
(``decode_envelope``, then the ``translate`` of its source on ``orders.events``), which must
yield the event item it notifies the customer with: the type, the order, the owner and, for a
rejection, the reason. Provider side: orders' REAL path (:mod:`tests.contracts.order_events`:
the domain's lifecycle up to the change the state names, ``publish_change``,
``encode_envelope``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pact import Pact, Verifier, match
from tests.contracts.order_events import Edit, message, unchanged
from tests.contracts.pactfiles import assert_committed, committed
from tests.contracts.providers import verify

from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow.notifications.entrypoints.consumers import SOURCES as NOTIFICATIONS_SOURCES
from stockflow.notifications.service_layer.handlers import EventItem
from stockflow_kit.messaging import decode_envelope

CONSUMER = "notifications"
PROVIDER = "orders"
CONFIRMED = "an OrderConfirmed event"
ORDER_ID = "order-pact-3"
TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
(ORDERS_SOURCE,) = (s for s in NOTIFICATIONS_SOURCES if s.topic == ORDERS_EVENTS_TOPIC)

# description -> (event type, provider state, sequence in the example, extra data expected)
EVENTS: Final[dict[str, tuple[str, str, int, dict[str, object]]]] = {
    "an OrderPlaced event": ("OrderPlaced", "alice placed an order of 2 SKU-1", 1, {}),
    CONFIRMED: ("OrderConfirmed", "alice's order of 2 SKU-1 is reserved", 3, {}),
    "an OrderRejected event": (
        "OrderRejected",
        "alice's order of 2 SKU-1 was rejected for insufficient stock",
        2,
        {"reason": match.str("insufficient_stock")},
    ),
    "an OrderCancelled event": (
        "OrderCancelled",
        "alice's confirmed order of 2 SKU-1 is cancelled",
        3,
        {},
    ),
    "an OrderShipped event": (
        "OrderShipped",
        "alice's confirmed order of 2 SKU-1 is shipped",
        3,
        {},
    ),
}


def order_events_pact() -> Pact:
    pact = Pact(CONSUMER, PROVIDER).with_specification("V4")
    for description, (kind, state, sequence, extra) in EVENTS.items():
        (
            pact.upon_receiving(description, "Async")
            .given(state)
            .with_body(
                {
                    "id": match.str("0193a1b2-0000-7000-8000-000000000003"),
                    "type": kind,
                    "source": "orders",
                    "subject": match.str(ORDER_ID),
                    "sequence": match.int(sequence),
                    "schema_version": match.int(1),
                    "occurred_at": match.regex("2026-01-01T00:00:00Z", regex=TIMESTAMP),
                    "data": {
                        "order_id": match.str(ORDER_ID),
                        "customer_id": match.str("alice"),
                        "lines": match.each_like({"sku": match.str("SKU-1"), "qty": match.int(2)}),
                        **extra,
                    },
                },
                content_type="application/json",
            )
            .with_metadata({"topic": ORDERS_EVENTS_TOPIC})
        )
    return pact


def test_notifications_consumes_the_order_events(tmp_path: Path) -> None:
    pact = order_events_pact()
    items: list[EventItem] = []

    def handler(body: Any, metadata: dict[str, Any]) -> None:
        assert metadata["topic"] == ORDERS_SOURCE.topic
        raw = body.encode() if isinstance(body, str) else bytes(body)
        item = ORDERS_SOURCE.translate(decode_envelope(raw))
        assert item is not None
        items.append(item)

    pact.verify(handler, "Async")  # raises PactVerificationError when the handler fails
    seen = sorted((i.type, i.order_id, i.customer_id, i.reason) for i in items)
    assert seen == [
        ("OrderCancelled", ORDER_ID, "alice", ""),
        ("OrderConfirmed", ORDER_ID, "alice", ""),
        ("OrderPlaced", ORDER_ID, "alice", ""),
        ("OrderRejected", ORDER_ID, "alice", "insufficient_stock"),
        ("OrderShipped", ORDER_ID, "alice", ""),
    ]
    assert_committed(pact, tmp_path, CONSUMER, PROVIDER)


def verifier_for(edit: Edit) -> Verifier:
    def state(action: str, parameters: dict[str, Any] | None = None) -> None:
        del action, parameters  # each producer tells the order's story up to its state

    def producer(kind: str) -> Any:
        return lambda *_, **__: message(kind, ORDER_ID, edit)

    return (
        Verifier(PROVIDER)
        .message_handler({d: producer(kind) for d, (kind, *_) in EVENTS.items()})
        .state_handler({name: state for _, name, _, _ in EVENTS.values()}, teardown=True)
        .add_source(committed(CONSUMER, PROVIDER))
    )


def test_orders_events_honour_the_notifications_pact() -> None:
    passed, output = verify(verifier_for(unchanged))
    assert passed, output
    for description in EVENTS:
        assert description in output


def test_a_missing_customer_fails_verification() -> None:
    def without_customer(data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if k != "customer_id"}

    passed, output = verify(verifier_for(without_customer))
    assert not passed, output
    assert "missing the following keys: customer_id" in output, output
    assert "There were 5 pact failures" in output, output


def test_a_renamed_reason_fails_verification() -> None:
    def reason_renamed(data: dict[str, Any]) -> dict[str, Any]:
        if "reason" not in data:
            return data
        return {**{k: v for k, v in data.items() if k != "reason"}, "why": data["reason"]}

    passed, output = verify(verifier_for(reason_renamed))
    assert not passed, output
    assert "was rejected for insufficient stock - an OrderRejected event" in output, output
    assert "missing the following keys: reason" in output, output


def test_an_added_field_passes_verification() -> None:
    passed, output = verify(verifier_for(lambda data: {**data, "channel": "web"}))
    assert passed, output
