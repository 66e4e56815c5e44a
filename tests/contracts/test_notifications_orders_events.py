"""notifications <- orders events: the ``OrderConfirmed`` envelope on ``orders.events``.

Consumer side: the pact's message is fed to notifications' REAL decoding path
(``decode_envelope``, then the ``translate`` of its source on ``orders.events``), which must
yield the event item it notifies the customer with. Provider side: orders' REAL path: the
domain's ``place`` then ``apply_fact`` of the inventory's ``Reserved`` (the order is
confirmed) and ``publish_change``, encoded with ``encode_envelope``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

from pact import Pact, Verifier, match
from tests.contracts.pactfiles import assert_committed, committed
from tests.contracts.providers import Outbox, verify

from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow.notifications.entrypoints.consumers import SOURCES as NOTIFICATIONS_SOURCES
from stockflow.notifications.service_layer.handlers import EventItem
from stockflow.orders.domain.model import Reserved, apply_fact, place
from stockflow.orders.service_layer.messages import publish_change
from stockflow.orders.service_layer.ports import UnitOfWork
from stockflow_kit.messaging import decode_envelope, encode_envelope

CONSUMER = "notifications"
PROVIDER = "orders"
CONFIRMED = "an OrderConfirmed event"
STATE = "alice's order of 2 SKU-1 is reserved"
ORDER_ID = "order-pact-3"
TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
(ORDERS_SOURCE,) = (s for s in NOTIFICATIONS_SOURCES if s.topic == ORDERS_EVENTS_TOPIC)


def confirmed_pact() -> Pact:
    pact = Pact(CONSUMER, PROVIDER).with_specification("V4")
    (
        pact.upon_receiving(CONFIRMED, "Async")
        .given(STATE)
        .with_body(
            {
                "id": match.str("0193a1b2-0000-7000-8000-000000000003"),
                "type": "OrderConfirmed",
                "source": "orders",
                "subject": match.str(ORDER_ID),
                "sequence": match.int(3),
                "schema_version": match.int(1),
                "occurred_at": match.regex("2026-01-01T00:00:00Z", regex=TIMESTAMP),
                "data": {
                    "order_id": match.str(ORDER_ID),
                    "customer_id": match.str("alice"),
                    "lines": match.each_like({"sku": match.str("SKU-1"), "qty": match.int(2)}),
                },
            },
            content_type="application/json",
        )
        .with_metadata({"topic": ORDERS_EVENTS_TOPIC})
    )
    return pact


def test_notifications_consumes_order_confirmed(tmp_path: Path) -> None:
    pact = confirmed_pact()
    items: list[EventItem] = []

    def handler(body: Any, metadata: dict[str, Any]) -> None:
        assert metadata["topic"] == ORDERS_SOURCE.topic
        raw = body.encode() if isinstance(body, str) else bytes(body)
        item = ORDERS_SOURCE.translate(decode_envelope(raw))
        assert item is not None
        items.append(item)

    pact.verify(handler, "Async")  # raises PactVerificationError when the handler fails
    (item,) = items
    assert (item.type, item.order_id, item.customer_id) == ("OrderConfirmed", ORDER_ID, "alice")
    assert_committed(pact, tmp_path, CONSUMER, PROVIDER)


def produce(edit: Any) -> dict[str, Any]:
    now = time.time()
    placed = place(ORDER_ID, "alice", (("SKU-1", 2),), now=now, timeout=30.0)
    change = apply_fact(placed.order, Reserved("SKU-1", 2), now=now)
    outbox = Outbox()
    publish_change(cast(UnitOfWork, outbox), change, correlation_id="pact")
    ((topic, (envelope,)),) = outbox.published
    assert envelope.type == "OrderConfirmed"
    wire = encode_envelope(
        envelope.__class__(
            **{
                **{n: getattr(envelope, n) for n in envelope.__struct_fields__},
                "data": edit(dict(envelope.data)),
            }
        )
    )
    return {"contents": wire, "metadata": {"topic": topic}, "content_type": "application/json"}


def verifier_for(edit: Any) -> Verifier:
    def state(action: str, parameters: dict[str, Any] | None = None) -> None:
        del action, parameters  # the producer places and confirms the order the state names

    return (
        Verifier(PROVIDER)
        .message_handler({CONFIRMED: lambda *_, **__: produce(edit)})
        .state_handler({STATE: state}, teardown=True)
        .add_source(committed(CONSUMER, PROVIDER))
    )


def test_orders_events_honour_the_notifications_pact() -> None:
    passed, output = verify(verifier_for(lambda data: data))
    assert passed, output
    assert CONFIRMED in output


def test_a_missing_customer_fails_verification() -> None:
    def without_customer(data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if k != "customer_id"}

    passed, output = verify(verifier_for(without_customer))
    assert not passed, output
    assert "missing the following keys: customer_id" in output, output
