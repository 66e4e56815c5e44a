"""``PostgresEventStore``: the distributed deployment's event store (asyncpg pool).

One batch is one transaction: move the fence (compare-and-set), lock the events table against
other appenders, check that every stream continues from its last event, COPY the events
straight into ``events`` (binary COPY measured ~1.4x faster than ``INSERT … SELECT unnest(…)``
and ~1.8x faster than ``executemany`` for 1,000 rows), COPY the processed message ids, upsert
the stock rows with one ``unnest`` statement, insert the idempotency records (``ON CONFLICT DO
NOTHING``: first wins), move the checkpoint, commit.

Unique (stream_id, sequence), unique event_id and the processed primary key are the last line
of defence; their violations become ``ConcurrencyError`` / ``DuplicateEventError`` /
``DuplicateMessageError`` (``raise … from None``: the driver's error says nothing more).

Several stores (tests, services) can share one database, each in its own ``schema``.

A lost connection (the server restarting, crashing or failing over) is retried
(``postgres_reconnect``): every operation after :meth:`~PostgresEventStore.start` runs again on
a fresh pool connection, with full-jitter backoff (``stockflow_kit.resilience.retrying``,
``on=EventStoreUnavailableError``, logged as ``stamina.retry_scheduled``) for up to
``reconnect_timeout`` seconds, and then raises :class:`EventStoreUnavailableError`. Every
operation may run twice: reads and upserts are idempotent (so are ``put`` and
``replace_stock``), and a ``commit`` whose first attempt went through after all meets its own
moved fence (``StaleFenceError``) or its processed ids (``DuplicateMessageError``) the second
time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

import asyncpg

from stockflow.inventory.adapters.event_store.batches import (
    KnownVersions,
    last_row_per_sku,
    stream_ranges,
)
from stockflow.inventory.adapters.event_store.postgres_reconnect import reconnecting
from stockflow.inventory.adapters.event_store.postgres_schema import (
    EVENT_COLUMNS,
    EVENT_ID_KEY,
    PROCESSED_KEY,
    PostgresSql,
)
from stockflow.inventory.service_layer.ports import (
    CommitBatch,
    ConcurrencyError,
    DuplicateEventError,
    DuplicateMessageError,
    EventStoreError,
    Fence,
    IdempotencyRecord,
    Lease,
    LeaseClaim,
    LeaseLostError,
    Member,
    Snapshot,
    StaleFenceError,
    StockRow,
    StoredEvent,
)

__all__ = ["PostgresEventStore"]


_CLOSE_SECONDS = 10.0
"""How long closing the pool may wait for its connections before terminating them."""


class PostgresEventStore:
    """Event store in schema ``schema`` of the PostgreSQL database at ``dsn``.

    ``reconnect_timeout``: seconds after which an operation stops retrying a lost connection
    and raises :class:`EventStoreUnavailableError` (10 by default: a restart or a failover
    usually takes less); ``attempt_timeout``: seconds one attempt may take (connecting gives up
    after ``connect_timeout``).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "inventory",
        pool_size: int = 4,
        reconnect_timeout: float = 10.0,
        attempt_timeout: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self.reconnect_timeout = reconnect_timeout
        self.attempt_timeout = attempt_timeout
        self._connect_timeout = connect_timeout
        self._sql = PostgresSql(schema)
        self._pool_size = pool_size
        self._pool_or_none: asyncpg.Pool | None = None
        self._known = KnownVersions()

    async def start(self) -> None:
        pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._pool_size, timeout=self._connect_timeout
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                # Concurrent CREATE … IF NOT EXISTS can still collide in the catalog.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._sql.schema)
                # Only when something is missing: on a schema in use, the DDL's locks (CREATE
                # INDEX IF NOT EXISTS takes a SHARE lock on its table) deadlock with a running
                # writer's commit.
                relations = self._sql.relations
                if await conn.fetchval(self._sql.count_relations, list(relations)) < len(relations):
                    await conn.execute(self._sql.ddl)
                if not await conn.fetchval(self._sql.has_traceparent, self._sql.schema):
                    await conn.execute(self._sql.add_traceparent)
        except BaseException:
            await pool.close()
            raise
        self._pool_or_none = pool

    async def close(self) -> None:
        """Close the pool; connections that do not close within 10 s (a server that is down or
        shutting down, a reconnect in flight) are terminated, so a service always stops."""
        pool, self._pool_or_none = self._pool_or_none, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), _CLOSE_SECONDS)
        except TimeoutError:
            pool.terminate()

    @property
    def _pool(self) -> asyncpg.Pool:
        if self._pool_or_none is None:
            raise EventStoreError("the event store is not started")
        return self._pool_or_none

    @reconnecting
    async def commit(self, batch: CommitBatch) -> int:
        ranges = stream_ranges(batch.events)
        sql = self._sql
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                if batch.fence is not None:
                    await self._move_fence(conn, batch.fence)
                if batch.leases is not None:
                    await self._check_leases(conn, batch.leases)
                if batch.events:
                    await conn.execute(sql.lock_events)
                    await self._check_anchors(conn, self._known.anchors(ranges))
                    await conn.copy_records_to_table(
                        "events",
                        schema_name=sql.schema,
                        columns=EVENT_COLUMNS,
                        records=[
                            (
                                e.stream_id,
                                e.sequence,
                                e.event_id,
                                e.type,
                                e.data,
                                e.occurred_at,
                                e.correlation_id,
                                e.causation_id,
                                e.traceparent,
                            )
                            for e in batch.events
                        ],
                    )
                    checkpoint: int = await conn.fetchval(sql.set_checkpoint)
                    if batch.leases is not None:
                        held = batch.leases.held
                        await conn.execute(
                            sql.record_lease_commits,
                            [p for p, _ in held],
                            [e for _, e in held],
                            batch.leases.member,
                            checkpoint - len(batch.events) + 1,
                            checkpoint,
                        )
                else:
                    checkpoint = await conn.fetchval(sql.get_checkpoint)
                if batch.processed:
                    at = batch.processed_at
                    await conn.copy_records_to_table(
                        "processed",
                        schema_name=sql.schema,
                        columns=("message_id", "processed_at"),
                        records=[(m, at) for m in batch.processed],
                    )
                if batch.stock:
                    rows = last_row_per_sku(batch.stock)
                    await conn.execute(
                        sql.upsert_stock,
                        [r.sku for r in rows],
                        [r.on_hand for r in rows],
                        [r.reserved for r in rows],
                        [r.version for r in rows],
                    )
                if batch.idempotency:
                    await self._insert_records(conn, batch.idempotency)
        except asyncpg.UniqueViolationError as error:
            raise _conflict(error.constraint_name) from None
        self._known.committed(ranges)
        return checkpoint

    async def _move_fence(self, conn: asyncpg.pool.PoolConnectionProxy, fence: Fence) -> None:
        if fence.expected_version == 0:
            moved = await conn.fetchval(self._sql.create_fence, fence.key)
        else:
            moved = await conn.fetchval(self._sql.move_fence, fence.key, fence.expected_version)
        if moved is None:
            raise StaleFenceError(f"fence {fence.key!r} is not at {fence.expected_version}")

    async def _check_leases(
        self, conn: asyncpg.pool.PoolConnectionProxy, claim: LeaseClaim
    ) -> None:
        held = claim.held
        rows = await conn.fetch(
            self._sql.check_leases, [p for p, _ in held], [e for _, e in held], claim.member
        )
        if len(rows) != len(held):
            found = {row[0] for row in rows}
            lost = [p for p, _ in held if p not in found]
            raise LeaseLostError(f"{claim.member} no longer holds partitions {lost}", lost)

    # leases: the LeaseStore role
    @reconnecting
    async def ensure_partitions(self, partitions: Collection[int]) -> None:
        await self._pool.execute(self._sql.ensure_leases, list(partitions))

    @reconnecting
    async def heartbeat(self, member: str, url: str, ttl: float) -> list[Member]:
        async with self._pool.acquire() as conn:
            await conn.execute(self._sql.heartbeat, member, url, ttl)
            rows = await conn.fetch(self._sql.live_members)
        return [Member(row[0], row[1]) for row in rows]

    @reconnecting
    async def leave(self, member: str) -> None:
        await self._pool.execute(self._sql.leave, member)

    @reconnecting
    async def leases(self) -> list[Lease]:
        rows = await self._pool.fetch(self._sql.all_leases)
        return [Lease(row[0], row[1], row[2], row[3]) for row in rows]

    @reconnecting
    async def acquire(self, partition: int, member: str, ttl: float) -> int | None:
        epoch: int | None = await self._pool.fetchval(self._sql.acquire, partition, member, ttl)
        return epoch

    @reconnecting
    async def renew(self, member: str, ttl: float) -> dict[int, int]:
        rows = await self._pool.fetch(self._sql.renew, member, ttl)
        return {row[0]: row[1] for row in rows}

    @reconnecting
    async def release(self, partition: int, member: str, epoch: int) -> bool:
        status = await self._pool.execute(self._sql.release, partition, member, epoch)
        return status.endswith(" 1")

    async def _check_anchors(
        self, conn: asyncpg.pool.PoolConnectionProxy, anchors: list[tuple[str, int]]
    ) -> None:
        """Each stream continuing in this batch must hold the sequence just before its first
        new one (no gap); the unique (stream, sequence) constraint catches overlaps."""
        if not anchors:
            return
        streams = [stream_id for stream_id, _ in anchors]
        previous = [sequence for _, sequence in anchors]
        found = await conn.fetchval(self._sql.count_anchors, streams, previous)
        if found != len(anchors):
            raise ConcurrencyError("a stream of the batch does not continue from its last event")

    @reconnecting
    async def read_stream(
        self, stream_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        return _stored(await self._pool.fetch(self._sql.read_stream, stream_id, after, limit))

    @reconnecting
    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return _stored(await self._pool.fetch(self._sql.read_all, after_position, limit))

    @reconnecting
    async def stream_version(self, stream_id: str) -> int:
        version: int = await self._pool.fetchval(self._sql.stream_version, stream_id)
        return version

    @reconnecting
    async def stream_versions(self) -> dict[str, int]:
        return {row[0]: row[1] for row in await self._pool.fetch(self._sql.stream_versions)}

    @reconnecting
    async def processed(self, message_ids: Collection[str]) -> set[str]:
        rows = await self._pool.fetch(self._sql.processed, list(message_ids))
        return {row[0] for row in rows}

    @reconnecting
    async def prune_processed(self, older_than: datetime) -> int:
        status = await self._pool.execute(self._sql.prune_processed, older_than)
        return int(status.rsplit(" ", 1)[1])

    @reconnecting
    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        latest = list({s.stream_id: s for s in snapshots}.values())
        await self._pool.execute(
            self._sql.upsert_snapshots,
            [s.stream_id for s in latest],
            [s.version for s in latest],
            [s.state for s in latest],
        )

    @reconnecting
    async def load_snapshots(self) -> list[Snapshot]:
        rows = await self._pool.fetch(self._sql.load_snapshots)
        return [Snapshot(stream_id=r[0], version=r[1], state=r[2]) for r in rows]

    @reconnecting
    async def get_stock(self, sku: str) -> StockRow | None:
        row = await self._pool.fetchrow(self._sql.get_stock, sku)
        return None if row is None else _stock_row(row)

    @reconnecting
    async def all_stock(self) -> list[StockRow]:
        return [_stock_row(row) for row in await self._pool.fetch(self._sql.all_stock)]

    @reconnecting
    async def projection_checkpoint(self) -> int:
        position: int = await self._pool.fetchval(self._sql.get_checkpoint)
        return position

    @reconnecting
    async def fence_version(self, key: str) -> int:
        version: int = await self._pool.fetchval(self._sql.fence_version, key)
        return version

    @reconnecting
    async def checkpoint(self, name: str) -> int:
        position: int = await self._pool.fetchval(self._sql.named_checkpoint, name)
        return position

    @reconnecting
    async def save_checkpoint(self, name: str, position: int) -> None:
        if name == "projection":
            raise ValueError("the projection checkpoint moves only with a commit")
        await self._pool.execute(self._sql.save_checkpoint, name, position)

    @reconnecting
    async def replace_stock(self, rows: Sequence[StockRow], *, checkpoint: int) -> None:
        sql = self._sql
        latest = last_row_per_sku(rows)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.share_events)
            last: int = await conn.fetchval(sql.last_position)
            if last > checkpoint:
                raise ConcurrencyError(f"the log holds events after position {checkpoint}")
            if checkpoint > last:
                raise ValueError(f"position {checkpoint} is beyond the log's last ({last})")
            await conn.execute(sql.delete_stock)
            await conn.execute(
                sql.upsert_stock,
                [r.sku for r in latest],
                [r.on_hand for r in latest],
                [r.reserved for r in latest],
                [r.version for r in latest],
            )
            await conn.execute(sql.replace_checkpoint, checkpoint)

    @reconnecting
    async def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        return await self._get_record(scope, key)

    async def _get_record(self, scope: str, key: str) -> IdempotencyRecord | None:
        row = await self._pool.fetchrow(self._sql.get_record, scope, key)
        if row is None:
            return None
        return IdempotencyRecord(
            scope=row[0],
            key=row[1],
            request_hash=row[2],
            status=row[3],
            body=row[4],
            media_type=row[5],
            created_at=row[6],
        )

    @reconnecting
    async def put(self, record: IdempotencyRecord) -> IdempotencyRecord:
        async with self._pool.acquire() as conn:
            await self._insert_records(conn, [record])
        # A statement of its own: it sees a record committed concurrently by another put.
        return await self._get_record(record.scope, record.key) or record

    async def _insert_records(
        self, conn: asyncpg.pool.PoolConnectionProxy, records: Sequence[IdempotencyRecord]
    ) -> None:
        await conn.execute(
            self._sql.insert_records,
            [r.scope for r in records],
            [r.key for r in records],
            [r.request_hash for r in records],
            [r.status for r in records],
            [r.body for r in records],
            [r.media_type for r in records],
            [r.created_at for r in records],
        )

    @reconnecting
    async def prune(self, older_than: float) -> int:
        status = await self._pool.execute(self._sql.prune_records, older_than)
        return int(status.rsplit(" ", 1)[1])


def _stored(rows: list[asyncpg.Record]) -> list[StoredEvent]:
    return [
        StoredEvent(
            position=r[0],
            stream_id=r[1],
            sequence=r[2],
            # asyncpg's own UUID subclass, made a plain uuid.UUID for equality and pickling.
            event_id=uuid.UUID(bytes=r[3].bytes),
            type=r[4],
            data=r[5],
            occurred_at=r[6],
            correlation_id=r[7],
            causation_id=r[8],
            traceparent=r[9],
        )
        for r in rows
    ]


def _stock_row(row: asyncpg.Record) -> StockRow:
    return StockRow(sku=row[0], on_hand=row[1], reserved=row[2], version=row[3])


def _conflict(constraint: str | None) -> EventStoreError:
    if constraint == EVENT_ID_KEY:
        return DuplicateEventError("an event id of the batch is already stored")
    if constraint == PROCESSED_KEY:
        return DuplicateMessageError("a message id of the batch is already processed")
    return ConcurrencyError(f"a stream of the batch was written concurrently ({constraint})")
