"""edge -> notifications (HTTP): a customer reads her notifications; staff subscribe a webhook
and list the webhooks.

Consumer side: edge built through its bootstrap with ``notifications_url`` at the pact mock
server, called as alice and as sam (staff) with their JWTs. Provider side (``slow``):
``stockflow serve notifications`` as a process on a free port (SQLite database, SQLite bus);
the states are set up the way production gets there: alice's notification from an
``OrderConfirmed`` envelope that orders' real code produces, published on the service's bus;
a webhook through notifications' own API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pact import Pact, Verifier, match
from tests.contracts.edge_consumer import edge_in_front_of
from tests.contracts.order_events import message
from tests.contracts.pactfiles import assert_committed, committed
from tests.contracts.providers import SERVICE_TOKEN, mutating_proxy, serving, verify
from tests.edge.conftest import bearer

from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow_kit.messaging import decode_envelope, make_bus

CONSUMER = "edge"
PROVIDER = "notifications"
STATE_NOTIFIED = "alice was notified that her order is confirmed"
STATE_ANY = "any webhooks"
STATE_WEBHOOK = "a webhook is subscribed"
READ = "alice reads her notifications"
SUBSCRIBE = "staff subscribe a webhook"
LIST = "staff list the webhooks"
TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
HOOK = {"url": "http://127.0.0.1:9/hooks/stockflow", "events": ["OrderConfirmed"]}


def service_headers(user: str, role: str) -> dict[str, object]:
    return {
        "Authorization": match.regex(f"Bearer {SERVICE_TOKEN}", regex=r"^Bearer \S+$"),
        "X-Stockflow-User": match.regex(user, regex=r"^\S+$"),
        "X-Stockflow-Role": match.regex(role, regex=r"^(customer|staff)$"),
    }


def webhook(*, created: bool) -> dict[str, object]:
    view: dict[str, object] = {
        "id": match.str("wh-0001"),
        "url": match.str(HOOK["url"]),
        "events": match.each_like(match.str("OrderConfirmed")),
    }
    if created:
        view["created_at"] = match.regex("2026-01-01T00:00:00Z", regex=TIMESTAMP)
        view["secret"] = match.regex("whsec_c2VjcmV0", regex=r"^whsec_[A-Za-z0-9+/=]+$")
    return view


def edge_notifications_pact() -> Pact:
    pact = Pact(CONSUMER, PROVIDER).with_specification("V4")
    (
        pact.upon_receiving(READ)
        .given(STATE_NOTIFIED)
        .with_request("GET", "/notifications")
        .with_query_parameter("limit", "50")
        .with_headers(service_headers("alice", "customer"))
        .will_respond_with(200)
        .with_body(
            {
                "notifications": match.each_like(
                    {
                        "id": match.str("n-0001"),
                        "user_id": "alice",
                        "type": match.str("OrderConfirmed"),
                        "message": match.str("Your order is confirmed."),
                        "created_at": match.regex("2026-01-01T00:00:00Z", regex=TIMESTAMP),
                        "order_id": match.str("order-pact-3"),
                    }
                ),
                "next": None,
            },
            content_type="application/json",
        )
    )
    (
        pact.upon_receiving(SUBSCRIBE)
        .given(STATE_ANY)
        .with_request("POST", "/webhooks")
        .with_headers(service_headers("sam", "staff"))
        .with_body(
            {"url": match.str(HOOK["url"]), "events": match.each_like("OrderConfirmed")},
            content_type="application/json",
        )
        .will_respond_with(201)
        .with_body(webhook(created=True), content_type="application/json")
    )
    (
        pact.upon_receiving(LIST)
        .given(STATE_WEBHOOK)
        .with_request("GET", "/webhooks")
        .with_headers(service_headers("sam", "staff"))
        .will_respond_with(200)
        .with_body(
            {"webhooks": match.each_like(webhook(created=False))}, content_type="application/json"
        )
    )
    return pact


@pytest.fixture
async def pact_and_edge() -> AsyncIterator[tuple[Pact, httpx.AsyncClient]]:
    pact = edge_notifications_pact()
    async with edge_in_front_of(pact, "notifications") as http:
        yield pact, http


async def test_edge_notifications_pact_consumer(
    pact_and_edge: tuple[Pact, httpx.AsyncClient], tmp_path: Path
) -> None:
    pact, http = pact_and_edge
    read = await http.get("/notifications", headers=bearer("alice"))
    assert read.status_code == 200, read.text
    assert read.json()["notifications"][0]["user_id"] == "alice"
    staff = bearer("sam", "staff")
    created = await http.post("/webhooks", json=HOOK, headers=staff)
    assert created.status_code == 201, created.text
    assert created.json()["secret"].startswith("whsec_")
    listed = await http.get("/webhooks", headers=staff)
    assert listed.status_code == 200, listed.text
    assert listed.json()["webhooks"][0]["url"] == HOOK["url"]
    assert_committed(pact, tmp_path, CONSUMER, PROVIDER)


class Notifications:
    """The provider process and what its states need: its URL and its bus."""

    def __init__(self, url: str, bus_url: str) -> None:
        self.url = url
        self.bus_url = bus_url

    def call(self, method: str, path: str, user: str, role: str, **kwargs: Any) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {SERVICE_TOKEN}",
            "X-Stockflow-User": user,
            "X-Stockflow-Role": role,
        }
        return httpx.request(method, f"{self.url}{path}", headers=headers, **kwargs)

    def notify_alice(self) -> None:
        """Publish orders' real ``OrderConfirmed`` (alice's order) and wait until it shows."""
        envelope = decode_envelope(message("OrderConfirmed", "order-pact-3")["contents"])

        async def publish() -> None:
            bus = make_bus(self.bus_url)
            await bus.start()
            try:
                await bus.publish(ORDERS_EVENTS_TOPIC, [envelope])
            finally:
                await bus.close()

        asyncio.run(publish())
        deadline = time.monotonic() + 20
        while not self.call("GET", "/notifications", "alice", "customer").json()["notifications"]:
            assert time.monotonic() < deadline, "alice's notification did not arrive"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def notifications(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Notifications]:
    directory = tmp_path_factory.mktemp("pact-notifications")
    env = {
        "NOTIFICATIONS_DATABASE_URL": f"sqlite:///{directory / 'notifications.sqlite3'}",
        "NOTIFICATIONS_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]',
        "NOTIFICATIONS_BATCH_WAIT": "0.02",
    }
    with serving("notifications", directory, env) as process:
        yield Notifications(process.base_url, f"sqlite:///{directory / 'bus.sqlite3'}")


def verifier_for(notifications: Notifications, url: str) -> Verifier:
    """The edge pact's verifier against *url* (the provider, or a proxy in front of it)."""

    def notified(action: str, parameters: dict[str, Any] | None = None) -> None:
        del parameters
        if action == "setup":
            notifications.notify_alice()

    def subscribed(action: str, parameters: dict[str, Any] | None = None) -> None:
        del parameters
        if action == "setup":
            answer = notifications.call("POST", "/webhooks", "sam", "staff", json=HOOK)
            assert answer.status_code == 201, answer.text

    def anything(action: str, parameters: dict[str, Any] | None = None) -> None:
        del action, parameters  # subscribing creates one more: 201 either way

    return (
        Verifier(PROVIDER, host="127.0.0.1")
        .add_transport(url=url)
        .add_source(committed(CONSUMER, PROVIDER))
        .state_handler(
            {STATE_NOTIFIED: notified, STATE_ANY: anything, STATE_WEBHOOK: subscribed},
            teardown=True,
        )
    )


@pytest.mark.slow
def test_notifications_honours_the_edge_pact(notifications: Notifications) -> None:
    passed, output = verify(verifier_for(notifications, notifications.url))
    assert passed, output
    for interaction in (READ, SUBSCRIBE, LIST):
        assert interaction in output


def without_secret(body: Any) -> Any:
    return {k: v for k, v in body.items() if k != "secret"} if isinstance(body, dict) else body


@pytest.mark.slow
def test_a_subscription_answer_without_its_secret_fails_verification(
    notifications: Notifications,
) -> None:
    with mutating_proxy(notifications.url, without_secret) as proxy:
        passed, output = verify(verifier_for(notifications, proxy))
    assert not passed, output
    assert "Actual map is missing the following keys: secret" in output, output
