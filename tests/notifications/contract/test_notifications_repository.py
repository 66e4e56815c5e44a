"""The notifications repositories behave the same on SQLite and PostgreSQL: inserts skip taken
ids, claims lease what they take, deleting a webhook kills its unsettled deliveries, and
pruning forgets only settled deliveries past their window."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.servers import admin_execute

from stockflow.notifications.adapters.orm import MIGRATIONS
from stockflow.notifications.adapters.repository import prune_deliveries
from stockflow.notifications.adapters.unit_of_work import NotificationsUnitOfWork, SqlQueries
from stockflow.notifications.domain.model import (
    Attempt,
    Delivery,
    Notification,
    Webhook,
    after_attempt,
)
from stockflow.platform.sql import Database, database_for, migrate


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/notifications.sqlite3"
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    name = f"notifications_repo_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin_execute(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(admin_execute(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = database_for(database_url)
    await migrate(database, MIGRATIONS)
    yield database
    await database.dispose()


def _webhook(webhook_id: str = "wh_1") -> Webhook:
    return Webhook(
        id=webhook_id, url="http://127.0.0.1/h", events=("OrderPlaced",), secret="s", created_at=1
    )


def _delivery(n: int, webhook_id: str = "wh_1", *, due: float = 10.0) -> Delivery:
    return Delivery(
        id=f"msg_{webhook_id}_{n}",
        webhook_id=webhook_id,
        event_id=f"e-{n}",
        event_type="OrderPlaced",
        body="{}",
        status="pending",
        attempts=0,
        next_attempt_at=due,
        created_at=float(n),
        updated_at=float(n),
    )


async def _seed(database: Database, *deliveries: Delivery) -> None:
    async with NotificationsUnitOfWork(database) as uow:
        await uow.webhooks.add(_webhook())
        await uow.webhooks.add(_webhook("wh_2"))
        assert await uow.deliveries.add_many(deliveries) == len(deliveries)
        await uow.commit()


async def test_taken_ids_are_skipped_on_insert(database: Database) -> None:
    note = Notification(id="e-1", user_id="alice", type="OrderPlaced", message="m", created_at=1)
    await _seed(database, _delivery(1))
    async with NotificationsUnitOfWork(database) as uow:
        assert await uow.notifications.add_many([note]) == 1
        assert await uow.notifications.add_many([note]) == 0
        assert await uow.deliveries.add_many([_delivery(1), _delivery(2)]) == 1
        await uow.commit()
    queries = SqlQueries(database)
    assert len(await queries.deliveries(webhook_id="wh_1", after=None, limit=10)) == 2


async def test_a_claim_leases_what_it_takes_until_it_is_handed_back(database: Database) -> None:
    await _seed(database, _delivery(1), _delivery(2), _delivery(3, due=50.0))
    async with NotificationsUnitOfWork(database) as uow:
        first = await uow.deliveries.claim(now=20.0, lease=100.0, limit=10)
        await uow.commit()
    assert [d.id for d in first] == ["msg_wh_1_1", "msg_wh_1_2"]
    async with NotificationsUnitOfWork(database) as uow:
        assert await uow.deliveries.claim(now=60.0, lease=100.0, limit=10) == [
            _delivery(3, due=50.0)
        ]
        await uow.deliveries.reschedule(["msg_wh_1_1"], at=60.0)
        await uow.commit()
    async with NotificationsUnitOfWork(database) as uow:
        again = await uow.deliveries.claim(now=60.0, lease=100.0, limit=10)
        await uow.commit()
    assert [d.id for d in again] == ["msg_wh_1_1"]


async def test_concurrent_claims_take_disjoint_deliveries(database: Database) -> None:
    await _seed(database, *(_delivery(n) for n in range(40)))

    async def claim() -> list[str]:
        async with NotificationsUnitOfWork(database) as uow:
            taken = await uow.deliveries.claim(now=20.0, lease=100.0, limit=15)
            await asyncio.sleep(0.05)  # hold the rows while the other claims
            await uow.commit()
        return [d.id for d in taken]

    results = await asyncio.gather(*(claim() for _ in range(3)))
    everything = [i for ids in results for i in ids]
    assert len(everything) == len(set(everything)) <= 40


async def test_an_attempt_is_logged_and_deleting_the_webhook_kills_the_rest(
    database: Database,
) -> None:
    await _seed(database, _delivery(1), _delivery(2), _delivery(9, "wh_2"))
    failed = after_attempt(_delivery(1), 500, None, now=30.0, max_attempts=3, retry_in=5.0)
    attempt = Attempt("msg_wh_1_1", 1, 29.0, 0.5, 500, None, failed.next_attempt_at)
    async with NotificationsUnitOfWork(database) as uow:
        await uow.deliveries.record(failed, attempt)
        assert await uow.webhooks.delete("wh_1", now=40.0)
        assert not await uow.webhooks.delete("wh_1", now=41.0)
        await uow.commit()
    queries = SqlQueries(database)
    assert await queries.webhook("wh_1") is None
    assert [w.id for w in await queries.webhooks()] == ["wh_2"]
    rows = await queries.deliveries(webhook_id="wh_1", after=None, limit=10)
    assert {(d.status, d.attempts, d.last_error) for d in rows} == {
        ("dead", 1, "webhook deleted"),
        ("dead", 0, "webhook deleted"),
    }
    assert (await queries.attempts(["msg_wh_1_1"]))["msg_wh_1_1"] == [attempt]
    assert await queries.backlog() == 1
    async with NotificationsUnitOfWork(database) as uow:
        assert [d.id for d in await uow.deliveries.claim(now=99.0, lease=1.0, limit=10)] == [
            "msg_wh_2_9"
        ]
        await uow.commit()


async def test_pruning_forgets_only_settled_deliveries_past_the_window(database: Database) -> None:
    await _seed(database, _delivery(1), _delivery(2))
    delivered = after_attempt(_delivery(1), 200, None, now=30.0, max_attempts=3, retry_in=1.0)
    async with NotificationsUnitOfWork(database) as uow:
        await uow.deliveries.record(delivered, Attempt("msg_wh_1_1", 1, 30.0, 0.1, 200, None, None))
        await uow.commit()
    async with database.writer.begin() as connection:
        assert await prune_deliveries(connection, before=31.0) == 1
    queries = SqlQueries(database)
    left = await queries.deliveries(webhook_id="wh_1", after=None, limit=10)
    assert [d.id for d in left] == ["msg_wh_1_2"]
    assert (await queries.attempts(["msg_wh_1_1"]))["msg_wh_1_1"] == []
