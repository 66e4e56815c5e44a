"""Orders and inventory as real ``stockflow serve`` processes on real ports, for one deployment.

``embedded``: SQLite stores and the embedded SQLite-log bus, shared by the two processes
(what ``stockflow up`` runs in one process, split so one service can be stopped alone).
``distributed``: PostgreSQL databases and NATS JetStream (a private stream prefix per test).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from stockflow_kit.lifecycle import ServiceProcess, free_port

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
TOKEN = os.environ.get("STOCKFLOW_SERVICE_TOKEN", "test-service-credential")
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STAFF = {**AUTH, "X-Stockflow-Role": "staff"}


@dataclass
class Deployment:
    """The two services of one test, their settings, and how to audit what they did."""

    name: str
    env: dict[str, str]
    audit_args: list[str]
    logs: Path
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def process(self, service: str) -> ServiceProcess:
        port = self.ports.setdefault(service, free_port())
        key = service.upper()
        return ServiceProcess(
            [STOCKFLOW, "serve", service],
            name=service,
            env={**os.environ, **self.env, f"{key}_PORT": str(port)},
            port=port,
            log=self.logs / f"{service}.log",
        )

    async def start(self, service: str) -> ServiceProcess:
        process = self.processes[service] = self.process(service)
        process.start()
        await process.wait_ready(within=60)
        return process

    async def stop(self, service: str) -> None:
        await self.processes[service].stop()

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def audit(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STOCKFLOW, "audit", *self.audit_args, "--json", str(self.logs / "audit.json")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def assert_audit_clean(self) -> dict[str, Any]:
        result = self.audit()
        assert result.returncode == 0, result.stdout + result.stderr
        report: dict[str, Any] = json.loads((self.logs / "audit.json").read_text())
        return report


class Client:
    """What a test does over HTTP: receive stock, place, read, cancel and ship orders."""

    def __init__(self, deployment: Deployment, http: httpx.AsyncClient) -> None:
        self.deployment, self.http = deployment, http

    async def receive(self, sku: str, qty: int) -> None:
        response = await self.http.post(
            f"{self.deployment.url('inventory')}/inventory/{sku}/receipts",
            json={"qty": qty},
            headers={**AUTH, "Idempotency-Key": f"receipt-{uuid.uuid4()}"},
        )
        assert response.status_code == 201, response.text

    async def stock(self, sku: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.deployment.url('inventory')}/inventory/{sku}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def events(self, sku: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            f"{self.deployment.url('inventory')}/inventory/{sku}/events", params={"limit": 1000}
        )
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    async def place(
        self, lines: list[dict[str, Any]], *, user: str = "alice", key: str | None = None
    ) -> httpx.Response:
        """Place an order; a shed request (503) is retried with the same key, as clients do."""
        headers = {**AUTH, "X-Stockflow-User": user, "Idempotency-Key": key or str(uuid.uuid4())}
        url = f"{self.deployment.url('orders')}/orders"
        for _ in range(100):
            response = await self.http.post(url, json={"lines": lines}, headers=headers)
            if response.status_code != 503:
                return response
            await asyncio.sleep(
                min(float(response.headers.get("Retry-After", "0.1")), 0.5) * random.random()
            )
        return response

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.http.get(
            f"{self.deployment.url('orders')}/orders/{order_id}", headers=STAFF
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def act(self, order_id: str, action: str) -> httpx.Response:
        return await self.http.post(
            f"{self.deployment.url('orders')}/orders/{order_id}/{action}", headers=STAFF
        )

    async def settled(
        self, order_ids: list[str], *, within: float = 60.0
    ) -> dict[str, dict[str, Any]]:
        """Every order once none is PENDING."""
        deadline = time.monotonic() + within
        while True:
            orders = {o: await self.order(o) for o in order_ids}
            pending = [o for o, body in orders.items() if body["status"] == "PENDING"]
            if not pending:
                return orders
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} orders still PENDING after {within} s")
            await asyncio.sleep(0.2)


async def eventually(check: Any, *, within: float = 60.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(every)


@asynccontextmanager
async def client(deployment: Deployment) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(timeout=30, headers=AUTH) as http:
        yield Client(deployment, http)


def random_lines(skus: list[str], rng: random.Random) -> list[dict[str, Any]]:
    chosen = rng.sample(skus, rng.randint(1, min(2, len(skus))))
    return [{"sku": sku, "qty": rng.randint(1, 2)} for sku in chosen]
