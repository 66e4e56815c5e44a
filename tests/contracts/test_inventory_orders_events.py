"""inventory <- orders: the order events on ``orders.events`` that the inventory acts on
(``OrderPlaced``, ``OrderCancelled``, ``OrderShipped``) and the saga's compensation, the
``ReleaseReservation`` command orders sends on ``inventory.commands``.

Consumer side: each message of the pact is fed to inventory's REAL decoding path (the kit's
``decode_envelope``, then the ``translate`` of the source inventory subscribes to on the
message's topic), which must turn it into the domain command it stands for. Provider side: the
message is produced by orders' REAL path (:mod:`tests.contracts.order_events`: the domain's
lifecycle up to the change, ``publish_change``, ``encode_envelope``); a changed field fails
verification, an added field passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pact import Pact, Verifier, match
from tests.contracts.order_events import Edit, message, unchanged
from tests.contracts.pactfiles import assert_committed, committed
from tests.contracts.providers import verify

from stockflow.contracts.inventory_commands import COMMANDS_TOPIC
from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow.inventory.domain.commands import ReleaseReservation, ReserveStock, ShipStock
from stockflow.inventory.entrypoints.consumers import SOURCES as INVENTORY_SOURCES
from stockflow_kit.messaging import decode_envelope

CONSUMER = "inventory"
PROVIDER = "orders"
ORDER_ID = "order-pact-2"
TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
SOURCES = {source.topic: source for source in INVENTORY_SOURCES}

PLACED = "an OrderPlaced event"
CANCELLED = "an OrderCancelled event"
SHIPPED = "an OrderShipped event"
RELEASE = "a ReleaseReservation command"

# description -> (message type, provider state, topic, sequence in the example)
MESSAGES: Final = {
    PLACED: ("OrderPlaced", "alice placed an order of 2 SKU-1", ORDERS_EVENTS_TOPIC, 1),
    CANCELLED: (
        "OrderCancelled",
        "alice's confirmed order of 2 SKU-1 is cancelled",
        ORDERS_EVENTS_TOPIC,
        3,
    ),
    SHIPPED: (
        "OrderShipped",
        "alice's confirmed order of 2 SKU-1 is shipped",
        ORDERS_EVENTS_TOPIC,
        3,
    ),
    RELEASE: (
        "ReleaseReservation",
        "alice's order of 2 SKU-1 timed out before the inventory answered",
        COMMANDS_TOPIC,
        0,
    ),
}


def lines(*, customer: bool) -> dict[str, object]:
    """An order event's ``data``: the inventory reads the order id and its lines (and
    ``OrderPlaced``'s schema requires the customer)."""
    data: dict[str, object] = {
        "order_id": match.str(ORDER_ID),
        "lines": match.each_like({"sku": match.str("SKU-1"), "qty": match.int(2)}, min=1),
    }
    if customer:
        data["customer_id"] = match.str("alice")
    return data


DATA: Final[dict[str, dict[str, object]]] = {
    PLACED: lines(customer=True),
    CANCELLED: lines(customer=False),
    SHIPPED: lines(customer=False),
    RELEASE: {"order_id": match.str(ORDER_ID), "skus": match.each_like(match.str("SKU-1"), min=1)},
}


def order_events_pact() -> Pact:
    pact = Pact(CONSUMER, PROVIDER).with_specification("V4")
    for number, (description, (kind, state, topic, sequence)) in enumerate(MESSAGES.items()):
        (
            pact.upon_receiving(description, "Async")
            .given(state)
            .with_body(
                {
                    "id": match.str(f"0193a1b2-0000-7000-8000-00000000000{number + 1}"),
                    "type": kind,
                    "source": "orders",
                    "subject": match.str(ORDER_ID),
                    "sequence": match.int(sequence),
                    "schema_version": match.int(1),
                    "occurred_at": match.regex("2026-01-01T00:00:00Z", regex=TIMESTAMP),
                    "data": DATA[description],
                },
                content_type="application/json",
            )
            .with_metadata({"topic": topic})
        )
    return pact


def test_inventory_consumes_the_orders_messages(tmp_path: Path) -> None:
    pact = order_events_pact()
    commands: list[object] = []

    def handler(body: Any, metadata: dict[str, Any]) -> None:
        raw = body.encode() if isinstance(body, str) else bytes(body)
        commands.append(SOURCES[metadata["topic"]].translate(decode_envelope(raw)))

    pact.verify(handler, "Async")  # raises PactVerificationError when the handler fails
    assert sorted(commands, key=repr) == sorted(
        [
            ReserveStock(order_id=ORDER_ID, lines=(("SKU-1", 2),)),
            ReleaseReservation(order_id=ORDER_ID, skus=("SKU-1",)),
            ShipStock(order_id=ORDER_ID, skus=("SKU-1",)),
            ReleaseReservation(order_id=ORDER_ID, skus=("SKU-1",)),
        ],
        key=repr,
    )
    assert_committed(pact, tmp_path, CONSUMER, PROVIDER)


def verifier_for(edit: Edit) -> Verifier:
    def state(action: str, parameters: dict[str, Any] | None = None) -> None:
        del action, parameters  # each producer tells the order's story up to its state

    def producer(kind: str) -> Any:
        return lambda *_, **__: message(kind, ORDER_ID, edit)

    return (
        Verifier(PROVIDER)
        .message_handler({d: producer(kind) for d, (kind, *_) in MESSAGES.items()})
        .state_handler(
            {state_name: state for _, state_name, _, _ in MESSAGES.values()}, teardown=True
        )
        .add_source(committed(CONSUMER, PROVIDER))
    )


def test_orders_messages_honour_the_inventory_pact() -> None:
    passed, output = verify(verifier_for(unchanged))
    assert passed, output
    for description in MESSAGES:
        assert description in output


def test_lines_as_an_object_fails_verification() -> None:
    def lines_by_sku(data: dict[str, Any]) -> dict[str, Any]:
        if "lines" not in data:
            return data
        return {**data, "lines": {line["sku"]: line["qty"] for line in data["lines"]}}

    passed, output = verify(verifier_for(lines_by_sku))
    assert not passed, output
    assert "$.data.lines -> Type mismatch" in output, output
    assert "There were 3 pact failures" in output, output  # placed, cancelled, shipped


def test_a_release_without_its_skus_fails_verification() -> None:
    def skus_renamed(data: dict[str, Any]) -> dict[str, Any]:
        if "skus" not in data:
            return data
        return {**{k: v for k, v in data.items() if k != "skus"}, "sku_list": data["skus"]}

    passed, output = verify(verifier_for(skus_renamed))
    assert not passed, output
    assert "missing the following keys: skus" in output, output


def test_an_added_field_passes_verification() -> None:
    passed, output = verify(verifier_for(lambda data: {**data, "channel": "web"}))
    assert passed, output
