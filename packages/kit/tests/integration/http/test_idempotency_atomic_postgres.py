"""The atomic path on PostgreSQL: the record commits with the effect, and the primary key
makes a concurrent second transaction with the same key wait, lose and roll back."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
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
    PostgresIdempotencyStore,
    install_problem_handlers,
)

pytestmark = pytest.mark.integration


class KeyTakenError(Exception):
    """Raised inside the transaction to roll the effect back: the key has a record."""


class SimulatedCrashError(Exception):
    """The process "dies" after its commit, before the answer leaves."""


class Replica:
    """One process of the service: its own pool and helper, the shared tables."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], suffix: str) -> None:
        self.pool, self.ledger = pool, f"ledger_{suffix}"
        self.store = PostgresIdempotencyStore(pool, table=f"idem_{suffix}")
        self.hold_before_commit = asyncio.Event()
        self.hold_before_commit.set()
        self.holding = asyncio.Event()
        self.idem = Idempotency(self.store)
        self.app = FastAPI()
        install_problem_handlers(self.app, ErrorTable(IDEMPOTENCY_ERRORS))
        self.app.post("/things/{thing}/receipts")(self.receive)

    async def start(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.ledger} (id BIGSERIAL PRIMARY KEY, qty INT)"
            )
            await self.store.create_schema(conn)

    async def receive(self, thing: str, request: Request) -> Response:
        body = await request.body()
        crash = request.headers.get("X-Crash-After-Commit") == "1"

        async def apply(ctx: IdempotencyContext | None) -> Handled:
            assert ctx is not None
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    receipt = await conn.fetchval(
                        f"INSERT INTO {self.ledger} (qty) VALUES ($1) RETURNING id",
                        json.loads(body)["qty"],
                    )
                    answer = json.dumps({"receipt": receipt}).encode()
                    if not await self.store.add(conn, ctx.record(201, answer)):
                        raise KeyTakenError
                    self.holding.set()
                    await self.hold_before_commit.wait()
            except KeyTakenError:
                return Handled(500, b"unused", duplicate=True)
            if crash:
                raise SimulatedCrashError
            return Handled(201, answer, recorded=True)

        return await self.idem.handle(request, body, apply, required=True)

    async def post(self, body: object, *, key: str, **headers: str) -> httpx.Response:
        sent = {"Idempotency-Key": key} | {k.replace("_", "-"): v for k, v in headers.items()}
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/things/a/receipts", json=body, headers=sent)

    async def quantities(self) -> list[int]:
        rows = await self.pool.fetch(f"SELECT qty FROM {self.ledger} ORDER BY id")
        return [row["qty"] for row in rows]


@pytest.fixture
def suffix() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
async def pools(
    postgres_url: str, suffix: str
) -> AsyncIterator[list[asyncpg.Pool[asyncpg.Record]]]:
    """Two pools, one per replica; the tables are dropped afterwards."""
    made = [await asyncpg.create_pool(postgres_url, min_size=1, max_size=2) for _ in range(2)]
    yield made
    await made[0].execute(f"DROP TABLE IF EXISTS ledger_{suffix}, idem_{suffix}")
    for pool in made:
        await pool.close()


async def waiting_on_a_lock(pool: asyncpg.Pool[asyncpg.Record], *, within: float = 10.0) -> bool:
    """Whether a backend of this database waits on a lock, polled for *within* seconds.

    The wait happens inside the server, so there is no event to await: poll its view.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_concurrent_transaction_with_the_same_key_waits_and_rolls_back(
    pools: list[asyncpg.Pool[asyncpg.Record]], suffix: str
) -> None:
    one, two = Replica(pools[0], suffix), Replica(pools[1], suffix)
    await one.start()
    one.hold_before_commit.clear()
    first = asyncio.create_task(one.post({"qty": 2}, key="k-1"))
    await one.holding.wait()  # replica one has written its record, not committed it

    second = asyncio.create_task(two.post({"qty": 2}, key="k-1"))
    blocked = await waiting_on_a_lock(pools[0])  # replica two's add waits on the key
    one.hold_before_commit.set()
    answers = await asyncio.gather(first, second)

    assert blocked
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].content == answers[1].content
    assert answers[1].headers[IDEMPOTENT_REPLAYED_HEADER] == "true"
    assert await one.quantities() == [2]


async def test_a_crash_after_the_commit_keeps_the_answer_for_the_retry(
    pools: list[asyncpg.Pool[asyncpg.Record]], suffix: str
) -> None:
    before, after = Replica(pools[0], suffix), Replica(pools[1], suffix)
    await before.start()

    crashed = await before.post({"qty": 2}, key="k-1", X_Crash_After_Commit="1")
    hijack = await after.post({"qty": 99}, key="k-1")
    genuine = await after.post({"qty": 2}, key="k-1")

    assert crashed.status_code == 500
    assert hijack.status_code == 409
    assert (genuine.status_code, genuine.json()) == (201, {"receipt": 1})
    assert await after.quantities() == [2]
