"""The benchmark fixtures of ``stockflow bench claims``: what the seed's claims compare the
product against. None of them is a product service; each runs as its own process
(``python -m stockflow.bench.claims_apps <app> --port N ...``) under uvicorn, as ``stockflow
serve`` runs a service (the kit's middleware, JSON logs at WARNING, uvloop).

* ``fragment``: one of the four fragmented profile services (identity, contact, addresses,
  preferences), each with its own SQLite database: ``GET`` / ``PUT /fragments/{user_id}``;
* ``composer``: the edge-like composer of :mod:`stockflow.bench.claims_composer`;
* ``sync_orders``: order placement where the inventory reserves *before* the answer: the
  order is stored, ``POST /internal/reservations`` is called through the resilient client,
  the order is stored CONFIRMED or REJECTED and the answer is 201 with that status.

Every app needs the service credential (``Authorization: Bearer``) except the composer, whose
callers present a customer's JWT, as at edge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import msgspec
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from stockflow.contracts.identity import USER_HEADER
from stockflow.contracts.orders import PlaceOrderRequest
from stockflow_kit.http import (
    DownstreamClientError,
    DownstreamError,
    ResilientClient,
    instrument,
)
from stockflow_kit.observability import configure_logging

__all__ = [
    "FRAGMENTS",
    "JSON_TYPE",
    "downstream_problem",
    "fixture_client",
    "fragment_app",
    "main",
    "problem",
    "sync_orders_app",
]

FRAGMENTS: Final = ("identity", "contact", "addresses", "preferences")
"""The four services the seed's profile domain was split into, and what each one kept."""
JSON_TYPE: Final = "application/json"
_SETTLED: Final = ("CONFIRMED", "REJECTED")


def problem(status: int, title: str, retry_after: float | None = None) -> Response:
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    body = msgspec.json.encode({"type": "about:blank", "title": title, "status": status})
    return Response(body, status, media_type="application/problem+json", headers=headers)


def downstream_problem(error: DownstreamError) -> Response:
    """A downstream's 4xx as it came (404: no such profile), anything else a 503."""
    if isinstance(error, DownstreamClientError):
        return problem(error.status, "a downstream refused the request")
    return problem(503, "a downstream could not answer", 1)


class _Documents:
    """A table of JSON documents by key with a version each, in one SQLite file (WAL),
    written from a worker thread as the services' SQLite stores do."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS documents"
            " (key TEXT PRIMARY KEY, version INTEGER NOT NULL, body BLOB NOT NULL)"
        )
        self._lock = threading.Lock()

    def _get(self, key: str) -> tuple[int, bytes] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT version, body FROM documents WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def _put(self, key: str, body: bytes) -> int:
        with self._lock:
            row = self._conn.execute(
                "INSERT INTO documents (key, version, body) VALUES (?, 1, ?)"
                " ON CONFLICT (key) DO UPDATE SET version = version + 1, body = excluded.body"
                " RETURNING version",
                (key, body),
            ).fetchone()
        return int(row[0])

    async def get(self, key: str) -> tuple[int, bytes] | None:
        return await asyncio.to_thread(self._get, key)

    async def put(self, key: str, body: bytes) -> int:
        return await asyncio.to_thread(self._put, key, body)

    def close(self) -> None:
        self._conn.close()


def fixture_client(name: str, url: str, token: str, registry: CollectorRegistry) -> ResilientClient:
    """A resilient client set as edge sets its own (``EdgeSettings``' defaults): 5 s per
    attempt, 10 s per call, 3 attempts, a breaker that opens after 5 failures for 10 s, 64
    calls in flight."""
    return ResilientClient(
        name,
        url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5.0,
        total_timeout=10.0,
        attempts=3,
        failure_threshold=5,
        reset_timeout=10.0,
        max_concurrent=64,
        registry=registry,
    )


def _service_app(title: str, token: str) -> FastAPI:
    """A FastAPI app that answers ``/readyz`` and refuses callers without *token*."""
    app = FastAPI(title=title)
    expected = f"Bearer {token}"

    @app.middleware("http")
    async def require_service(request: Request, call_next: Any) -> Response:
        if request.url.path != "/readyz" and request.headers.get("authorization") != expected:
            return problem(401, "a service credential is required")
        response: Response = await call_next(request)
        return response

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def fragment_app(name: str, database: Path, token: str) -> FastAPI:
    """One fragment of the profile: its fields of every user, in its own database."""
    documents = _Documents(database)
    app = _service_app(f"bench fragment {name}", token)

    @app.get("/fragments/{user_id}")
    async def read(user_id: str, request: Request) -> Response:
        if request.headers.get(USER_HEADER) != user_id:
            return problem(404, "no such profile")
        found = await documents.get(user_id)
        if found is None:
            return problem(404, "no such profile")
        version, body = found
        return Response(body, media_type=JSON_TYPE, headers={"ETag": f'"{version}"'})

    @app.put("/fragments/{user_id}")
    async def write(user_id: str, request: Request) -> Response:
        if request.headers.get(USER_HEADER) != user_id:
            return problem(404, "no such profile")
        body = await request.body()
        version = await documents.put(user_id, body)
        return Response(body, media_type=JSON_TYPE, headers={"ETag": f'"{version}"'})

    return app


def sync_orders_app(inventory_url: str, database: Path, *, token: str) -> FastAPI:
    """``POST /orders`` that answers only after the inventory reserved (or refused) the lines."""
    orders = _Documents(database)
    inventory: list[ResilientClient] = []
    registry = CollectorRegistry()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        inventory.append(fixture_client("inventory", inventory_url, token, registry))
        try:
            yield
        finally:
            await inventory[0].aclose()

    app = _service_app("bench sync orders", token)
    app.router.lifespan_context = lifespan

    @app.post("/orders")
    async def place(request: Request) -> Response:
        body = await request.body()
        try:
            placed = msgspec.json.decode(body, type=PlaceOrderRequest)
        except msgspec.ValidationError as error:
            return problem(422, str(error))
        customer = request.headers.get(USER_HEADER, "")
        # One order per (customer, Idempotency-Key), as the orders service keeps it: edge
        # retries a placement that timed out with the same key.
        key = request.headers.get("idempotency-key") or uuid.uuid4().hex
        order_id = "sync-" + hashlib.sha256(f"{customer}\n{key}".encode()).hexdigest()[:32]
        stored = await orders.get(order_id)
        if stored is not None and msgspec.json.decode(stored[1])["status"] in _SETTLED:
            return Response(stored[1], 201, media_type=JSON_TYPE)
        lines = [{"sku": line.sku, "qty": line.qty} for line in placed.lines]
        order = {"id": order_id, "customer_id": customer, "lines": lines, "status": "PENDING"}
        await orders.put(order_id, msgspec.json.encode(order))
        try:
            response = await inventory[0].post(
                "/internal/reservations",
                json={"order_id": order_id, "lines": lines},
                headers={"Idempotency-Key": order_id},
            )
        except DownstreamError:
            order["status"] = "FAILED"
            await orders.put(order_id, msgspec.json.encode(order))
            return problem(503, "the inventory could not reserve", 1)
        reserved = response.json()["status"] == "reserved"
        order["status"] = "CONFIRMED" if reserved else "REJECTED"
        await orders.put(order_id, msgspec.json.encode(order))
        return Response(msgspec.json.encode(order), 201, media_type=JSON_TYPE)

    return app


def _build(args: argparse.Namespace, token: str, jwt_secret: str) -> FastAPI:
    if args.app == "fragment":
        return fragment_app(args.name, Path(args.database), token)
    if args.app == "composer":
        from stockflow.bench.claims_composer import composer_app

        downstreams = dict(item.split("=", 1) for item in args.downstream)
        return composer_app(downstreams, secret=jwt_secret, token=token)
    return sync_orders_app(args.inventory_url, Path(args.database), token=token)


def main(argv: list[str] | None = None) -> None:
    """Serve one fixture until interrupted. The secrets come in the environment, never on
    the command line: the service credential in ``STOCKFLOW_SERVICE_TOKEN`` (as for ``stockflow
    serve``), the composer's JWT key in ``CLAIMS_JWT_SECRET``."""
    import os

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("app", choices=("fragment", "composer", "sync_orders"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", choices=FRAGMENTS, default="identity")
    parser.add_argument("--database", default="")
    parser.add_argument("--downstream", action="append", default=[], help="name=url")
    parser.add_argument("--inventory-url", default="")
    args = parser.parse_args(argv)
    configure_logging(json=True, level="WARNING", service=f"bench-{args.app}")
    app = _build(
        args, os.environ["STOCKFLOW_SERVICE_TOKEN"], os.environ.get("CLAIMS_JWT_SECRET", "")
    )
    instrument(app, service=f"bench-{args.app}", registry=CollectorRegistry())
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_config=None, access_log=False, loop="uvloop"
    )


if __name__ == "__main__":
    main()
