"""Provider side of orders <- inventory events: each message of the committed pact is produced
by inventory's REAL path from a decision to the wire: ``decide_reservation`` on the state the
provider state names, the event codec (``encode_event``, what the event store keeps), the
relay's ``envelope_of`` (what it publishes on ``inventory.events``) and the kit's
``encode_envelope``. The mutation tests change that encoder's output: a field's type (fails)
and an added field (passes)."""

from __future__ import annotations

from typing import Any

from pact import Verifier
from pact.types import Message
from tests.contracts import inventory_events as c
from tests.contracts.inventory_events import Edit, unchanged
from tests.contracts.pactfiles import committed
from tests.contracts.providers import verify

from stockflow.inventory.domain.model import StockState, decide_reservation


class Inventory:
    """The provider's state (one SKU's stock) and its real encoder of what it decides."""

    def __init__(self, edit: Edit = unchanged) -> None:
        self.state = StockState(sku=c.SKU)
        self.edit = edit

    def set_state(self, state: str, action: str, parameters: dict[str, Any] | None = None) -> None:
        del parameters
        on_hand = c.ON_HAND[state] if action == "setup" else 0
        self.state = StockState(sku=c.SKU, on_hand=on_hand, version=1)

    def produce(self, event_type: str) -> Message:
        decided = decide_reservation({c.SKU: self.state}, c.ORDER_ID, [(c.SKU, c.QTY)])
        (event,) = (e for e in decided if type(e).__name__ == event_type)
        return c.message(event, sequence=self.state.version + 1, edit=self.edit)


def verifier_for(inventory: Inventory) -> Verifier:
    return (
        Verifier(c.PROVIDER)
        .message_handler(
            {
                c.RESERVED: lambda *_, **__: inventory.produce("StockReserved"),
                c.REJECTED: lambda *_, **__: inventory.produce("ReservationRejected"),
            }
        )
        .state_handler(dict.fromkeys(c.ON_HAND, inventory.set_state), teardown=True)
        .add_source(committed(c.CONSUMER, c.PROVIDER))
    )


def test_inventory_events_honour_the_orders_pact() -> None:
    passed, output = verify(verifier_for(Inventory()))
    assert passed, output
    assert c.RESERVED in output
    assert c.REJECTED in output


def test_a_changed_field_type_fails_verification() -> None:
    def qty_as_text(data: dict[str, Any]) -> dict[str, Any]:
        if "qty" in data:
            data["qty"] = str(data["qty"])
        return data

    passed, output = verify(verifier_for(Inventory(qty_as_text)))
    assert not passed, output
    assert "$.data.qty -> Expected '2' (String) to be an integer" in output, output


def test_an_added_field_passes_verification() -> None:
    def with_warehouse(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "warehouse": "main"}

    passed, output = verify(verifier_for(Inventory(with_warehouse)))
    assert passed, output
