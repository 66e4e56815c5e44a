"""Provider side of edge -> orders: the committed pact replayed against the REAL orders
service (``stockflow serve orders`` on a free port, its SQLite database and the SQLite bus),
each provider state set up through orders' own API (``POST /orders`` as that customer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pact import Verifier
from tests.contracts import edge_orders as c
from tests.contracts.pactfiles import committed
from tests.contracts.providers import SERVICE_TOKEN, mutating_proxy, serving, verify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def orders_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("pact-orders")
    env = {"ORDERS_DATABASE_URL": f"sqlite:///{directory / 'orders.sqlite3'}"}
    with serving("orders", directory, env) as process:
        yield process.base_url


def place(orders_url: str, customer: str, key: str) -> None:
    """Place an order through orders' API, as *customer* with *key*, and check its id."""
    answer = httpx.post(
        f"{orders_url}/orders",
        json={"lines": c.LINES},
        headers={
            "Authorization": f"Bearer {SERVICE_TOKEN}",
            "X-Stockflow-User": customer,
            "X-Stockflow-Role": "customer",
            "Idempotency-Key": key,
        },
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["id"] == c.order_id(customer, key)


def state_handlers(orders_url: str) -> dict[str, Callable[..., None]]:
    def nothing(action: str, parameters: dict[str, Any] | None = None) -> None:
        # Orders never forgets an order, and a fresh database per verification would cost a
        # process start: the key's placement is new or, when it ran before on this database,
        # a replay, which orders answers with the same 202.
        del action, parameters

    def alice_placed(action: str, parameters: dict[str, Any] | None = None) -> None:
        if action == "setup":
            place(orders_url, "alice", c.READ_KEY)

    def bob_placed(action: str, parameters: dict[str, Any] | None = None) -> None:
        if action == "setup":
            place(orders_url, "bob", c.OTHERS_KEY)

    return {
        c.STATE_NO_ORDERS: nothing,
        c.STATE_ALICE_PLACED: alice_placed,
        c.STATE_BOB_PLACED: bob_placed,
    }


def verifier_for(provider_url: str, orders_url: str) -> Verifier:
    return (
        Verifier(c.PROVIDER, host="127.0.0.1")
        .add_transport(url=provider_url)
        .add_source(committed(c.CONSUMER, c.PROVIDER))
        .state_handler(state_handlers(orders_url), teardown=True)
    )


def test_orders_honours_the_edge_pact(orders_url: str) -> None:
    passed, output = verify(verifier_for(orders_url, orders_url))
    assert passed, output
    for description in (
        "alice places an order",
        "alice reads her order",
        "alice reads bob's order",
    ):
        assert description in output


def renamed_status(body: Any) -> Any:
    """A breaking change: ``status`` is called ``state``."""
    if isinstance(body, dict) and "status" in body and "id" in body:
        body["state"] = body.pop("status")
    return body


def added_field(body: Any) -> Any:
    """A compatible change: an added optional field."""
    if isinstance(body, dict) and "id" in body:
        body["priority"] = "normal"
    return body


def test_a_renamed_response_field_fails_verification(orders_url: str) -> None:
    with mutating_proxy(orders_url, renamed_status) as proxy:
        passed, output = verify(verifier_for(proxy, orders_url))
    assert not passed, output
    assert "Actual map is missing the following keys: status" in output, output


def test_an_added_optional_field_passes_verification(orders_url: str) -> None:
    with mutating_proxy(orders_url, added_field) as proxy:
        passed, output = verify(verifier_for(proxy, orders_url))
    assert passed, output
