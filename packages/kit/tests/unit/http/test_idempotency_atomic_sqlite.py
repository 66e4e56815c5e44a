"""The atomic path on SQLite: the answer commits with the effect, so no crash separates them.

The service appends receipts to a ledger table and writes the Idempotency-Key record on the
same connection, in the same transaction (``SqliteIdempotencyStore.add``). This is the
scenario of the hostile review: the process dies after the commit and before answering; after
the restart a retry of the key with another body must be refused, and the genuine retry must
get the answer that was never delivered.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.responses import Response

from stockflow_kit.http import (
    IDEMPOTENCY_ERRORS,
    IDEMPOTENT_REPLAYED_HEADER,
    ErrorTable,
    Handled,
    Idempotency,
    IdempotencyContext,
    SqliteIdempotencyStore,
    install_problem_handlers,
)


class SimulatedCrashError(Exception):
    """The process "dies" after its commit, before the answer leaves."""


class Replica:
    """One process of the service over the database file *path*."""

    def __init__(self, path: str) -> None:
        self.store = SqliteIdempotencyStore(path)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, thing TEXT, qty INT)"
        )
        self.store.create_schema(self.conn)
        self.hold_before_effect = asyncio.Event()
        self.hold_before_effect.set()
        self.holding = asyncio.Event()
        self.idem = Idempotency(self.store)
        self.app = FastAPI()
        install_problem_handlers(self.app, ErrorTable(IDEMPOTENCY_ERRORS))
        self.app.post("/things/{thing}/receipts")(self.receive)

    async def receive(self, thing: str, request: Request) -> Response:
        body = await request.body()
        crash = request.headers.get("X-Crash-After-Commit") == "1"

        async def apply(ctx: IdempotencyContext | None) -> Handled:
            self.holding.set()
            await self.hold_before_effect.wait()
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                receipt = self.conn.execute(
                    "INSERT INTO ledger (thing, qty) VALUES (?, ?)",
                    (thing, json.loads(body)["qty"]),
                ).lastrowid
                answer = json.dumps({"receipt": receipt}).encode()
                if ctx is not None and not self.store.add(self.conn, ctx.record(201, answer)):
                    self.conn.execute("ROLLBACK")  # an earlier request with this key won
                    return Handled(500, b"unused", duplicate=True)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            if crash:
                raise SimulatedCrashError
            return Handled(201, answer, recorded=ctx is not None)

        return await self.idem.handle(request, body, apply)

    async def post(self, body: object, *, key: str, **headers: str) -> httpx.Response:
        sent = {"Idempotency-Key": key} | {k.replace("_", "-"): v for k, v in headers.items()}
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/things/a/receipts", json=body, headers=sent)

    def ledger(self) -> list[int]:
        return [qty for (qty,) in self.conn.execute("SELECT qty FROM ledger ORDER BY id")]

    async def close(self) -> None:
        self.conn.close()
        await self.store.close()


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[Replica]]]:
    """``await replicas()``: start one more process of the service on the same file."""
    async with AsyncExitStack() as stack:

        async def start() -> Replica:
            replica = Replica(str(tmp_path / "state.sqlite3"))
            stack.push_async_callback(replica.close)
            return replica

        yield start


async def test_a_crash_after_the_commit_keeps_the_answer_for_the_retry(replicas) -> None:
    before = await replicas()
    crashed = await before.post({"qty": 2}, key="k-1", X_Crash_After_Commit="1")
    after = await replicas()  # "the restart": a new store and connection on the same file

    hijack = await after.post({"qty": 99}, key="k-1")
    genuine = await after.post({"qty": 2}, key="k-1")

    assert crashed.status_code == 500  # the client never got its answer
    assert hijack.status_code == 409
    assert (genuine.status_code, genuine.json()) == (201, {"receipt": 1})
    assert genuine.headers[IDEMPOTENT_REPLAYED_HEADER] == "true"
    assert after.ledger() == [2]


async def test_an_effect_whose_record_loses_the_race_is_rolled_back(replicas) -> None:
    one, two = await replicas(), await replicas()
    two.hold_before_effect.clear()
    late = asyncio.create_task(two.post({"qty": 2}, key="k-1"))
    await two.holding.wait()  # replica two found no record and is about to apply
    first = await one.post({"qty": 2}, key="k-1")
    two.hold_before_effect.set()

    duplicate = await late

    assert (first.status_code, duplicate.status_code) == (201, 201)
    assert duplicate.content == first.content
    assert duplicate.headers[IDEMPOTENT_REPLAYED_HEADER] == "true"
    assert one.ledger() == [2]  # replica two's insert was rolled back with its record


async def test_requests_without_a_key_are_applied_each_time(replicas) -> None:
    replica = await replicas()
    transport = httpx.ASGITransport(app=replica.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = [await client.post("/things/a/receipts", json={"qty": 1}) for _ in range(2)]

    assert [a.status_code for a in answers] == [201, 201]
    assert replica.ledger() == [1, 1]
