"""The notifications service on PostgreSQL and NATS JetStream (the distributed deployment's
stores), in process: events consumed once, deliveries signed and retried, and two replicas
sharing one database never sending a delivery twice at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry
from standardwebhooks import Webhook
from tests.notifications.conftest import (
    Notifications,
    Receiver,
    client,
    eventually,
    notifications_settings,
    order_event,
)
from tests.servers import admin_execute, delete_streams

from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow.notifications.bootstrap import NotificationsService, build
from stockflow.notifications.entrypoints.consumers import order_item
from stockflow_kit.messaging import Bus, Delivery, make_bus

pytestmark = pytest.mark.integration


@dataclass
class Distributed:
    database_url: str
    bus: Bus


@pytest.fixture
async def distributed(postgres_url: str, nats_url: str) -> AsyncIterator[Distributed]:
    run = uuid.uuid4().hex[:10]
    name = f"notifications_{run}"
    await admin_execute(postgres_url, f'CREATE DATABASE "{name}"')
    bus = make_bus(f"{nats_url}?prefix=t{run}")
    await bus.start()
    try:
        yield Distributed(postgres_url.rsplit("/", 1)[0] + f"/{name}", bus)
    finally:
        await bus.close()
        await delete_streams(nats_url, prefix=f"t{run}_")
        await admin_execute(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _service(setup: Distributed, registry: CollectorRegistry) -> NotificationsService:
    settings = notifications_settings(
        database_url=setup.database_url, webhook_max_attempts=5, ack_wait=5.0
    )
    return build(settings, bus=setup.bus, registry=registry)


async def test_events_are_consumed_once_and_delivered_signed_after_retries(
    distributed: Distributed, receivers: Callable[[], Receiver]
) -> None:
    receiver = receivers()
    receiver.statuses = [500, 500]
    registry = CollectorRegistry()
    service = _service(distributed, registry)
    await service.start()
    try:
        async with client(service.app) as http:
            notifications = Notifications(distributed.bus, service, http, registry)
            webhook = await notifications.subscribe(receiver.url, ["OrderConfirmed"])
            placed = order_event("OrderPlaced", "o-1", customer_id="alice")
            confirmed = order_event("OrderConfirmed", "o-1", customer_id="alice", sequence=2)
            await distributed.bus.publish(ORDERS_EVENTS_TOPIC, [placed, confirmed])
            await distributed.bus.publish(ORDERS_EVENTS_TOPIC, [confirmed])  # a duplicate

            page = await eventually(
                lambda: notifications.notifications("alice"),
                lambda p: len(p["notifications"]) == 2,
            )
            assert [n["type"] for n in page["notifications"]] == ["OrderConfirmed", "OrderPlaced"]
            (delivery,) = await eventually(
                lambda: notifications.deliveries(webhook["id"]),
                lambda ds: len(ds) == 1 and ds[0]["status"] == "delivered",
                within=20.0,
            )
            assert delivery["attempts"] == 3
            verifier = Webhook(webhook["secret"])
            for request in receiver.received:
                assert request.headers["webhook-id"] == delivery["id"]
                verifier.verify(request.body, request.headers)

            # A redelivery of an applied message changes nothing (the inbox on PostgreSQL).
            again = Delivery(envelope=confirmed, topic=ORDERS_EVENTS_TOPIC, delivery_count=2)
            await service.handlers.on_events([(again, order_item(confirmed))])
            assert len((await notifications.notifications("alice"))["notifications"]) == 2
            assert len(await notifications.deliveries(webhook["id"])) == 1
            assert len(receiver.received) == 3
    finally:
        await service.stop()


async def test_two_replicas_send_each_delivery_once(
    distributed: Distributed, receivers: Callable[[], Receiver]
) -> None:
    receiver = receivers()
    registries = [CollectorRegistry(), CollectorRegistry()]
    replicas = [_service(distributed, registry) for registry in registries]
    for replica in replicas:
        await replica.start()
    try:
        async with client(replicas[0].app) as http:
            notifications = Notifications(distributed.bus, replicas[0], http, registries[0])
            webhook = await notifications.subscribe(receiver.url, ["OrderPlaced"])
            events = [order_event("OrderPlaced", f"o-{n}", customer_id="bob") for n in range(30)]
            await distributed.bus.publish(ORDERS_EVENTS_TOPIC, events)
            await eventually(
                lambda: notifications.deliveries(webhook["id"]),
                lambda ds: len(ds) == 30 and all(d["status"] == "delivered" for d in ds),
                within=30.0,
            )
            ids = [r.headers["webhook-id"] for r in receiver.received]
            assert len(ids) == len(set(ids)) == 30
            page = await notifications.notifications("bob", limit="100")
            assert len(page["notifications"]) == 30
    finally:
        for replica in replicas:
            await replica.stop()
