"""Webhook deliveries to real HTTP receivers on free ports: signed, retried, dead, and kept
apart per endpoint by the breakers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from standardwebhooks import Webhook
from tests.notifications.conftest import (
    STAFF,
    Notifications,
    Receiver,
    client,
    eventually,
    notifications_settings,
    order_event,
    publish_orders,
)

from stockflow.contracts.notifications import WebhookPayload
from stockflow.notifications.adapters.orm import ATTEMPTS
from stockflow.notifications.bootstrap import build
from stockflow_kit.messaging import InMemoryBus


@asynccontextmanager
async def started(bus: InMemoryBus, **settings: object) -> AsyncIterator[Notifications]:
    registry = CollectorRegistry()
    service = build(notifications_settings(**settings), bus=bus, registry=registry)
    await service.start()
    async with client(service.app) as http:
        yield Notifications(bus, service, http, registry)
    await service.stop()


@pytest.fixture
async def flaky_setup(bus: InMemoryBus) -> AsyncIterator[Notifications]:
    async with started(bus, webhook_max_attempts=5) as notifications:
        yield notifications


@pytest.fixture
async def breaker_setup(bus: InMemoryBus) -> AsyncIterator[Notifications]:
    async with started(
        bus,
        webhook_max_attempts=4,
        webhook_breaker_failures=2,
        webhook_breaker_reset_seconds=0.3,
    ) as notifications:
        yield notifications


async def _settled(notifications: Notifications, webhook_id: str, count: int = 1) -> list[Any]:
    return list(
        await eventually(
            lambda: notifications.deliveries(webhook_id),
            lambda ds: len(ds) == count and all(d["status"] in ("delivered", "dead") for d in ds),
            within=20.0,
        )
    )


async def test_a_delivery_that_fails_twice_is_retried_signed_and_then_delivered(
    flaky_setup: Notifications, receivers: Callable[[], Receiver]
) -> None:
    notifications = flaky_setup
    receiver = receivers()
    receiver.statuses = [500, 500]
    webhook = await notifications.subscribe(receiver.url, ["OrderConfirmed"])
    event = order_event("OrderConfirmed", "o-7", customer_id="alice")
    await publish_orders(notifications.bus, event)

    (delivery,) = await _settled(notifications, webhook["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == (
        "delivered",
        3,
        200,
    )
    log = delivery["attempt_log"]
    assert [(a["attempt"], a.get("status")) for a in log] == [(1, 500), (2, 500), (3, 200)]
    assert "next_attempt_at" in log[0]
    assert "next_attempt_at" in log[1]
    assert "next_attempt_at" not in log[2]
    assert "next_attempt_at" not in delivery

    assert len(receiver.received) == 3
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert ids == {delivery["id"]}  # one idempotent delivery id across the retries
    verifier = Webhook(webhook["secret"])
    for request in receiver.received:
        assert request.path == "/hook"
        payload = verifier.verify(request.body, request.headers)
        assert payload["type"] == "OrderConfirmed"
        assert payload["data"]["order_id"] == "o-7"
        msgspec.json.decode(request.body, type=WebhookPayload)
    assert notifications.metric(
        "notifications_webhook_deliveries_total", {"outcome": "delivered"}
    ) == pytest.approx(1)
    assert notifications.metric(
        "notifications_webhook_attempts_total", {"outcome": "failure"}
    ) == pytest.approx(2)


async def test_the_correlation_id_of_the_event_reaches_the_notification_and_the_webhook(
    flaky_setup: Notifications, receivers: Callable[[], Receiver]
) -> None:
    notifications = flaky_setup
    receiver = receivers()
    webhook = await notifications.subscribe(receiver.url, ["OrderConfirmed"])
    event = msgspec.structs.replace(
        order_event("OrderConfirmed", "o-8", customer_id="alice"), correlation_id="corr-o-8"
    )
    await publish_orders(notifications.bus, event)

    (delivery,) = await _settled(notifications, webhook["id"])
    assert delivery["status"] == "delivered"
    (request,) = receiver.received
    payload = Webhook(webhook["secret"]).verify(request.body, request.headers)
    assert payload["correlation_id"] == "corr-o-8"
    (note,) = (await notifications.notifications("alice"))["notifications"]
    assert (note["order_id"], note["correlation_id"]) == ("o-8", "corr-o-8")

    untraced = msgspec.structs.replace(
        order_event("OrderConfirmed", "o-9", customer_id="alice"), correlation_id=None
    )
    await publish_orders(notifications.bus, untraced)
    await _settled(notifications, webhook["id"], count=2)
    last = Webhook(webhook["secret"]).verify(
        receiver.received[-1].body, receiver.received[-1].headers
    )
    assert "correlation_id" not in last  # absent, not null, when the event had none


async def test_a_failing_endpoint_ends_dead_and_opens_its_breaker_while_another_gets_through(
    breaker_setup: Notifications, receivers: Callable[[], Receiver]
) -> None:
    notifications = breaker_setup
    broken, healthy = receivers(), receivers()
    broken.default = 503
    doomed = await notifications.subscribe(broken.url, ["OrderPlaced"])
    fine = await notifications.subscribe(
        healthy.url.replace("127.0.0.1", "localhost"), ["OrderPlaced"]
    )
    events = [order_event("OrderPlaced", f"o-{n}", customer_id="alice") for n in range(3)]
    await publish_orders(notifications.bus, *events)

    delivered = await _settled(notifications, fine["id"], 3)
    assert {d["status"] for d in delivered} == {"delivered"}
    assert len(healthy.received) == 3
    dead = await _settled(notifications, doomed["id"], 3)
    assert {d["status"] for d in dead} == {"dead"}
    assert all(d["attempts"] == 4 for d in dead)
    assert all(d["last_status"] == 503 for d in dead)
    assert len(broken.received) == 12

    opened = notifications.metric(
        "circuit_breaker_transitions_total",
        {"name": f"webhook:{doomed['id']}", "from_state": "closed", "to_state": "open"},
    )
    assert opened >= 1
    assert notifications.metric(
        "circuit_breaker_transitions_total",
        {"name": f"webhook:{fine['id']}", "from_state": "closed", "to_state": "open"},
    ) == pytest.approx(0)
    assert notifications.metric("notifications_webhook_postponed_total") >= 1
    assert notifications.metric(
        "notifications_webhook_dead_deliveries_total", {"webhook": doomed["id"]}
    ) == pytest.approx(3)
    assert notifications.metric(
        "notifications_webhook_deliveries_total", {"outcome": "dead"}
    ) == pytest.approx(3)


async def test_a_redirect_is_a_failed_attempt_and_is_never_followed(
    bus: InMemoryBus, receivers: Callable[[], Receiver]
) -> None:
    elsewhere = receivers()
    redirecting = receivers()
    redirecting.default = 307
    redirecting.headers = {"location": elsewhere.url}
    async with started(bus, webhook_max_attempts=2) as notifications:
        webhook = await notifications.subscribe(redirecting.url, ["OrderPlaced"])
        await publish_orders(notifications.bus, order_event("OrderPlaced"))
        (delivery,) = await _settled(notifications, webhook["id"])
        assert (delivery["status"], delivery["last_status"]) == ("dead", 307)
    assert elsewhere.received == []
    assert len(redirecting.received) == 2


async def test_a_target_no_longer_allowed_is_refused_at_delivery(
    bus: InMemoryBus, tmp_path: Any, receivers: Callable[[], Receiver]
) -> None:
    receiver = receivers()
    database = f"sqlite:///{tmp_path}/notifications.sqlite3"
    async with started(bus, database_url=database) as notifications:
        webhook = await notifications.subscribe(receiver.url, ["OrderPlaced"])
    # Restarted with an allowlist that no longer has the receiver's address.
    async with started(
        bus, database_url=database, webhook_allowed_hosts=[], webhook_max_attempts=2
    ) as notifications:
        await publish_orders(bus, order_event("OrderPlaced"))
        (delivery,) = await _settled(notifications, webhook["id"])
        assert delivery["status"] == "dead"
        assert delivery["last_error"].startswith("refused: ")
        assert "last_status" not in delivery
        assert notifications.metric(
            "notifications_webhook_attempts_total", {"outcome": "refused"}
        ) == pytest.approx(2)
    assert receiver.received == []


async def test_deleting_a_webhook_kills_what_it_had_not_delivered(
    bus: InMemoryBus, receivers: Callable[[], Receiver]
) -> None:
    receiver = receivers()
    receiver.default = 500
    async with started(
        bus, webhook_backoff_initial=30.0, webhook_backoff_max=60.0
    ) as notifications:
        webhook = await notifications.subscribe(receiver.url, ["OrderPlaced"])
        await publish_orders(bus, order_event("OrderPlaced"))
        await eventually(lambda: _attempted(notifications, webhook["id"]), bool)
        response = await notifications.http.delete(f"/webhooks/{webhook['id']}", headers=STAFF)
        assert response.status_code == 204
        dead = await notifications.service.queries.deliveries(
            webhook_id=webhook["id"], after=None, limit=10
        )
        assert [(d.status, d.last_error) for d in dead] == [("dead", "webhook deleted")]


async def _attempted(notifications: Notifications, webhook_id: str) -> bool:
    deliveries = await notifications.deliveries(webhook_id)
    return bool(deliveries) and deliveries[0]["attempts"] >= 1


async def test_settled_deliveries_are_pruned_after_their_window(
    bus: InMemoryBus, receivers: Callable[[], Receiver]
) -> None:
    receiver = receivers()
    async with started(bus, delivery_retention_seconds=60.0) as notifications:
        webhook = await notifications.subscribe(receiver.url, ["OrderPlaced"])
        await publish_orders(bus, order_event("OrderPlaced"))
        await _settled(notifications, webhook["id"])
        service = notifications.service
        await service.prune()
        assert len(await notifications.deliveries(webhook["id"])) == 1  # not old enough
        real = service.clock
        service.clock = lambda: real() + 120.0
        await service.prune()
        assert await notifications.deliveries(webhook["id"]) == []
        async with service.database.reader.connect() as connection:
            left = (await connection.execute(select(func.count()).select_from(ATTEMPTS))).scalar()
        assert left == 0
        assert (await notifications.notifications("alice"))["notifications"] != []


async def test_a_delivery_survives_a_restart_and_keeps_its_id(
    bus: InMemoryBus, tmp_path: Any, receivers: Callable[[], Receiver]
) -> None:
    receiver = receivers()
    receiver.default = 503
    database = f"sqlite:///{tmp_path}/notifications.sqlite3"
    async with started(bus, database_url=database, webhook_max_attempts=50) as notifications:
        webhook = await notifications.subscribe(receiver.url, ["OrderPlaced"])
        await publish_orders(bus, order_event("OrderPlaced"))
        await eventually(lambda: _attempted(notifications, webhook["id"]), bool)
    receiver.default = 200
    async with started(bus, database_url=database, webhook_max_attempts=50) as notifications:
        (delivery,) = await _settled(notifications, webhook["id"])
        assert delivery["status"] == "delivered"
        # An attempt cut short by the stop may have reached the receiver: at least once.
        assert delivery["attempts"] <= len(receiver.received)
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery["id"]}
