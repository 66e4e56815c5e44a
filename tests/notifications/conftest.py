"""Fixtures for the notifications tests: the service built through its bootstrap on an
in-memory bus (``memory://`` store), an ASGI client, event builders, and a real HTTP
receiver on a free port that records what it gets and answers what it is told."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow.notifications.bootstrap import NotificationsService, build
from stockflow.notifications.settings import NotificationsSettings
from stockflow_kit.messaging import Bus, Envelope, InMemoryBus

SERVICE_TOKEN = "test-service-credential"
AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
STAFF = {**AUTH, "X-Stockflow-Role": "staff", "X-Stockflow-User": "stella"}


def customer(user: str) -> dict[str, str]:
    return {**AUTH, "X-Stockflow-User": user}


def notifications_settings(**overrides: object) -> NotificationsSettings:
    values: dict[str, object] = {
        "database_url": "memory://",
        "bus_url": "memory://",
        "batch_wait": 0.01,
        "service_token": SERVICE_TOKEN,
        "webhook_allowed_hosts": ["127.0.0.1", "localhost"],
        "webhook_poll_seconds": 0.02,
        "webhook_backoff_initial": 0.01,
        "webhook_backoff_max": 0.05,
        "webhook_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return NotificationsSettings(**values)  # type: ignore[arg-type]


def order_event(
    kind: str,
    order_id: str = "o-1",
    *,
    customer_id: str = "alice",
    reason: str | None = None,
    sequence: int = 1,
    id: str | None = None,  # noqa: A002 - the envelope's field
) -> Envelope:
    data: dict[str, Any] = {
        "order_id": order_id,
        "customer_id": customer_id,
        "lines": [{"sku": "SKU-1", "qty": 1}],
    }
    if reason is not None:
        data["reason"] = reason
    return Envelope.new(kind, data, source="orders", subject=order_id, sequence=sequence, id=id)


def low_stock(sku: str = "SKU-1", available: int = 2, threshold: int = 5) -> Envelope:
    return Envelope.new(
        "LowStockDetected",
        {"sku": sku, "available": available, "threshold": threshold},
        source="inventory",
        subject=sku,
    )


async def publish_orders(bus: Bus, *envelopes: Envelope) -> None:
    await bus.publish(ORDERS_EVENTS_TOPIC, list(envelopes))


async def eventually(
    read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], within: float = 10.0
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {within} s")
        await asyncio.sleep(0.02)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@dataclass
class Notifications:
    """A started notifications service on an in-memory bus, with its HTTP client."""

    bus: Bus
    service: NotificationsService
    http: httpx.AsyncClient
    registry: CollectorRegistry

    async def subscribe(self, url: str, events: list[str]) -> dict[str, Any]:
        response = await self.http.post(
            "/webhooks", json={"url": url, "events": events}, headers=STAFF
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def notifications(self, user: str, **params: str) -> dict[str, Any]:
        response = await self.http.get("/notifications", params=params, headers=customer(user))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"/webhooks/{webhook_id}/deliveries", headers=STAFF)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["deliveries"]
        return found

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0


@pytest.fixture
def settings() -> NotificationsSettings:
    return notifications_settings()


@pytest.fixture
async def notifications(
    bus: InMemoryBus, settings: NotificationsSettings
) -> AsyncIterator[Notifications]:
    registry = CollectorRegistry()
    service = build(settings, bus=bus, registry=registry)
    await service.start()
    async with client(service.app) as http:
        yield Notifications(bus, service, http, registry)
    await service.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server in a thread: answers each POST with the next of ``statuses`` (then
    ``default``) and records it."""

    server: ThreadingHTTPServer
    statuses: list[int] = field(default_factory=list)
    default: int = 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def answer(self, request: Received) -> int:
        with self.lock:
            self.received.append(request)
            return self.statuses.pop(0) if self.statuses else self.default


def _start_receiver() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            status = receiver.answer(Received(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            for name, value in receiver.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    """Make receivers; each is shut down after the test."""
    started: list[Receiver] = []

    def make() -> Receiver:
        receiver = _start_receiver()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.server.shutdown()
        receiver.server.server_close()
