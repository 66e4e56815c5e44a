"""inventory <- orders events: the ``OrderPlaced`` envelope on ``orders.events``.

Consumer side: the pact's message is fed to inventory's REAL decoding path (the kit's
``decode_envelope``, then the ``translate`` of the source inventory subscribes to on that
topic), which must turn it into the ``ReserveStock`` command it stands for. Provider side: the
message is produced by orders' REAL path: the domain's ``place`` and ``publish_change`` (the
envelopes it hands its outbox), encoded with the kit's ``encode_envelope``; a changed field
type fails verification, an added field passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from pact import Pact, Verifier, match
from tests.contracts.pactfiles import assert_committed, committed
from tests.contracts.providers import Outbox, verify

from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow.inventory.domain.commands import ReserveStock
from stockflow.inventory.entrypoints.consumers import SOURCES as INVENTORY_SOURCES
from stockflow.orders.domain.model import place
from stockflow.orders.service_layer.messages import publish_change
from stockflow.orders.service_layer.ports import UnitOfWork
from stockflow_kit.messaging import Envelope, decode_envelope, encode_envelope

CONSUMER = "inventory"
PROVIDER = "orders"
PLACED = "an OrderPlaced event"
STATE = "alice placed an order of 2 SKU-1"
ORDER_ID = "order-pact-2"
TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
(ORDERS_SOURCE,) = (s for s in INVENTORY_SOURCES if s.topic == ORDERS_EVENTS_TOPIC)


def order_events_pact() -> Pact:
    pact = Pact(CONSUMER, PROVIDER).with_specification("V4")
    (
        pact.upon_receiving(PLACED, "Async")
        .given(STATE)
        .with_body(
            {
                "id": match.str("0193a1b2-0000-7000-8000-000000000001"),
                "type": "OrderPlaced",
                "source": "orders",
                "subject": match.str(ORDER_ID),
                "sequence": match.int(1),
                "schema_version": match.int(1),
                "occurred_at": match.regex("2026-01-01T00:00:00Z", regex=TIMESTAMP),
                "data": {
                    "order_id": match.str(ORDER_ID),
                    "customer_id": match.str("alice"),
                    "lines": match.each_like(
                        {"sku": match.str("SKU-1"), "qty": match.int(2)}, min=1
                    ),
                },
            },
            content_type="application/json",
        )
        .with_metadata({"topic": ORDERS_EVENTS_TOPIC})
    )
    return pact


def test_inventory_consumes_order_placed(tmp_path: Path) -> None:
    pact = order_events_pact()
    commands: list[object] = []

    def handler(body: Any, metadata: dict[str, Any]) -> None:
        assert metadata["topic"] == ORDERS_SOURCE.topic
        raw = body.encode() if isinstance(body, str) else bytes(body)
        commands.append(ORDERS_SOURCE.translate(decode_envelope(raw)))

    pact.verify(handler, "Async")  # raises PactVerificationError when the handler fails
    assert commands == [ReserveStock(order_id=ORDER_ID, lines=(("SKU-1", 2),))]
    assert_committed(pact, tmp_path, CONSUMER, PROVIDER)


Edit = Callable[[dict[str, Any]], dict[str, Any]]


def produce(edit: Edit) -> dict[str, Any]:
    change = place(ORDER_ID, "alice", (("SKU-1", 2),), now=time.time(), timeout=30.0)
    outbox = Outbox()
    publish_change(cast(UnitOfWork, outbox), change, correlation_id="pact")
    ((topic, (envelope,)),) = outbox.published
    data = edit(dict(envelope.data))
    wire = encode_envelope(Envelope(**{**_fields(envelope), "data": data}))
    return {"contents": wire, "metadata": {"topic": topic}, "content_type": "application/json"}


def _fields(envelope: Envelope) -> dict[str, Any]:
    return {name: getattr(envelope, name) for name in envelope.__struct_fields__}


def verifier_for(edit: Edit) -> Verifier:
    def state(action: str, parameters: dict[str, Any] | None = None) -> None:
        del action, parameters  # the producer places the order the state names

    return (
        Verifier(PROVIDER)
        .message_handler({PLACED: lambda *_, **__: produce(edit)})
        .state_handler({STATE: state}, teardown=True)
        .add_source(committed(CONSUMER, PROVIDER))
    )


def test_orders_events_honour_the_inventory_pact() -> None:
    passed, output = verify(verifier_for(lambda data: data))
    assert passed, output
    assert PLACED in output


def test_lines_as_an_object_fails_verification() -> None:
    def lines_by_sku(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "lines": {line["sku"]: line["qty"] for line in data["lines"]}}

    passed, output = verify(verifier_for(lines_by_sku))
    assert not passed, output
    assert "$.data.lines -> Type mismatch" in output, output


def test_an_added_field_passes_verification() -> None:
    passed, output = verify(verifier_for(lambda data: {**data, "channel": "web"}))
    assert passed, output
