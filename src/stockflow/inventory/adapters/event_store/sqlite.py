"""``SqliteEventStore``: the embedded deployment's event store, one SQLite file (stdlib sqlite3).

Durability: WAL journal with ``synchronous=FULL`` by default, so each commit fsyncs the WAL
before it returns and a crash at any instant (process kill or power loss) loses no
acknowledged batch. ``NORMAL`` skips that fsync: under WAL it survives a killed process but may
lose the last batches on power loss, while the broker (JetStream, the embedded log) may already
count them as acked. With batches of ~1,000 events one fsync per batch is affordable, so FULL.

Threading: sqlite3 calls block, so every call runs on one dedicated thread that owns the only
connection (a single-worker executor). One thread also serialises this process's writers
without locks, and the cost of the hop (~50 µs) is noise against a ~10 ms batch. A batch is
``BEGIN IMMEDIATE`` + one ``executemany`` per table + ``COMMIT``: no per-row Python round trips.

Concurrency guards, the last line of defence behind the single-writer rule: UNIQUE
(stream_id, sequence) and UNIQUE event_id; a gap is caught by checking that each stream's first
new sequence follows an existing one; the partition fence is a row moved by compare-and-set.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

import msgspec

from stockflow.inventory.adapters.event_store import sqlite_schema as sql
from stockflow.inventory.adapters.event_store.batches import (
    KnownVersions,
    last_row_per_sku,
    stream_ranges,
)
from stockflow.inventory.service_layer.ports import (
    CommitBatch,
    ConcurrencyError,
    DuplicateEventError,
    DuplicateMessageError,
    EventStoreError,
    EventStoreUnavailableError,
    Fence,
    IdempotencyRecord,
    NewEvent,
    Snapshot,
    StaleFenceError,
    StockRow,
    StoredEvent,
)

__all__ = ["SqliteEventStore"]

_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


_STORAGE_FAILURES = (
    "database or disk is full",
    "disk i/o error",
    "unable to open database file",
    "attempt to write a readonly database",
    "database is locked",
)


def _is_storage_failure(error: sqlite3.Error) -> bool:
    text = str(error).lower()
    return any(cause in text for cause in _STORAGE_FAILURES)


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite ends it by itself on some errors
    (a full disk), and a second ROLLBACK would hide the real cause behind "cannot rollback"."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class SqliteEventStore:
    """Event store in the SQLite file at ``path`` (created with its schema on :meth:`start`)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        self._path = os.fspath(path)
        self._synchronous = synchronous
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._known = KnownVersions()

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-events")
        await self._run(self._open)

    async def close(self) -> None:
        if self._executor is None:
            return
        await self._run(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _run(self, call: Callable[..., _T], *args: object) -> _T:
        if self._executor is None:
            raise EventStoreError("the event store is not started")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)
        except sqlite3.OperationalError as error:
            # A full disk, an I/O error, a file made read-only or removed: the storage, not
            # the request, is at fault, and it may come back. Said with SQLite's own words.
            if _is_storage_failure(error):
                raise EventStoreUnavailableError(f"{self._path}: {error}") from error
            raise

    def _open(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {self._synchronous}")
        db.execute("PRAGMA busy_timeout = 10000")
        # Measured with 1,000-event batches: the default 2 MB cache and a checkpoint every
        # 1,000 pages (~ every batch) cost ~40% of the throughput; a checkpoint thread of its
        # own brought nothing more.
        db.execute("PRAGMA cache_size = -65536")
        db.execute("PRAGMA wal_autocheckpoint = 10000")
        sql.create_schema(db)
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise EventStoreError("the event store is not started")
        return self._db

    async def commit(self, batch: CommitBatch) -> int:
        return await self._run(self._commit, batch)

    def _commit(self, batch: CommitBatch) -> int:
        ranges = stream_ranges(batch.events)
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch.leases is not None:
                raise EventStoreError("the SQLite store has no partition leases (ADR 0010)")
            if batch.fence is not None:
                _move_fence(db, batch.fence)
            if batch.events:
                _check_anchors(db, self._known.anchors(ranges))
                db.executemany(sql.INSERT_EVENT, _event_rows(batch.events))
                (position,) = db.execute("SELECT last_insert_rowid()").fetchone()
                db.execute(sql.SET_CHECKPOINT, (position,))
            if batch.processed:
                at = _micros(batch.processed_at)
                db.executemany(sql.INSERT_PROCESSED, [(m, at) for m in batch.processed])
            if batch.stock:
                db.executemany(
                    sql.UPSERT_STOCK,
                    [
                        (r.sku, r.on_hand, r.reserved, r.version)
                        for r in last_row_per_sku(batch.stock)
                    ],
                )
            if batch.idempotency:
                db.executemany(sql.INSERT_RECORD, [_record_row(r) for r in batch.idempotency])
            checkpoint: int = db.execute(sql.GET_CHECKPOINT).fetchone()[0]
            db.execute("COMMIT")
        except sqlite3.IntegrityError as error:
            _rollback(db)
            raise _conflict(str(error)) from None
        except BaseException:
            _rollback(db)
            raise
        self._known.committed(ranges)
        return checkpoint

    async def read_stream(
        self, stream_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        return await self._run(
            self._select_events, sql.READ_STREAM, (stream_id, after, -1 if limit is None else limit)
        )

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return await self._run(self._select_events, sql.READ_ALL, (after_position, limit))

    def _select_events(self, query: str, params: tuple[object, ...]) -> list[StoredEvent]:
        return [
            StoredEvent(
                position=position,
                stream_id=stream_id,
                sequence=sequence,
                event_id=uuid.UUID(bytes=event_id),
                type=type_,
                data=data,
                occurred_at=_moment(occurred_at),
                correlation_id=correlation_id,
                causation_id=causation_id,
                traceparent=traceparent,
            )
            for (
                position,
                stream_id,
                sequence,
                event_id,
                type_,
                data,
                occurred_at,
                correlation_id,
                causation_id,
                traceparent,
            ) in self._conn.execute(query, params)
        ]

    async def stream_version(self, stream_id: str) -> int:
        return await self._run(self._scalar, sql.STREAM_VERSION, (stream_id,))

    async def stream_versions(self) -> dict[str, int]:
        return await self._run(self._stream_versions)

    def _stream_versions(self) -> dict[str, int]:
        return dict(self._conn.execute(sql.STREAM_VERSIONS))

    def _scalar(self, query: str, params: tuple[object, ...]) -> int:
        value: int = self._conn.execute(query, params).fetchone()[0]
        return value

    async def processed(self, message_ids: Collection[str]) -> set[str]:
        return await self._run(self._processed, list(message_ids))

    def _processed(self, message_ids: list[str]) -> set[str]:
        found = self._conn.execute(sql.PROCESSED, (msgspec.json.encode(message_ids),))
        return {message_id for (message_id,) in found}

    async def prune_processed(self, older_than: datetime) -> int:
        return await self._run(self._write, sql.PRUNE_PROCESSED, [(_micros(older_than),)])

    def _write(self, statement: str, rows: Sequence[tuple[object, ...]]) -> int:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.executemany(statement, rows)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        return cursor.rowcount

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        rows = [(s.stream_id, s.version, s.state) for s in snapshots]
        await self._run(self._write, sql.UPSERT_SNAPSHOT, rows)

    async def load_snapshots(self) -> list[Snapshot]:
        return await self._run(self._load_snapshots)

    def _load_snapshots(self) -> list[Snapshot]:
        return [
            Snapshot(stream_id=stream_id, version=version, state=state)
            for stream_id, version, state in self._conn.execute(sql.LOAD_SNAPSHOTS)
        ]

    async def get_stock(self, sku: str) -> StockRow | None:
        rows = await self._run(self._select_stock, sql.GET_STOCK, (sku,))
        return rows[0] if rows else None

    async def all_stock(self) -> list[StockRow]:
        return await self._run(self._select_stock, sql.ALL_STOCK, ())

    def _select_stock(self, query: str, params: tuple[object, ...]) -> list[StockRow]:
        return [
            StockRow(sku=sku, on_hand=on_hand, reserved=reserved, version=version)
            for sku, on_hand, reserved, version in self._conn.execute(query, params)
        ]

    async def projection_checkpoint(self) -> int:
        return await self._run(self._scalar, sql.GET_CHECKPOINT, ())

    async def fence_version(self, key: str) -> int:
        return await self._run(self._scalar, sql.FENCE_VERSION, (key,))

    async def checkpoint(self, name: str) -> int:
        return await self._run(self._scalar, sql.NAMED_CHECKPOINT, (name,))

    async def save_checkpoint(self, name: str, position: int) -> None:
        if name == "projection":
            raise ValueError("the projection checkpoint moves only with a commit")
        await self._run(self._write, sql.SAVE_CHECKPOINT, [(name, position)])

    async def replace_stock(self, rows: Sequence[StockRow], *, checkpoint: int) -> None:
        await self._run(self._replace_stock, rows, checkpoint)

    def _replace_stock(self, rows: Sequence[StockRow], checkpoint: int) -> None:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")  # no commit can land until this one is done
        try:
            (last,) = db.execute(sql.LAST_POSITION).fetchone()
            if last > checkpoint:
                raise ConcurrencyError(f"the log holds events after position {checkpoint}")
            if checkpoint > last:
                raise ValueError(f"position {checkpoint} is beyond the log's last ({last})")
            db.execute(sql.DELETE_STOCK)
            db.executemany(
                sql.INSERT_STOCK,
                [(r.sku, r.on_hand, r.reserved, r.version) for r in last_row_per_sku(rows)],
            )
            db.execute(sql.SET_CHECKPOINT, (checkpoint,))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    async def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        return await self._run(self._get_record, scope, key)

    def _get_record(self, scope: str, key: str) -> IdempotencyRecord | None:
        found = self._conn.execute(sql.GET_RECORD, (scope, key)).fetchone()
        if found is None:
            return None
        scope, key, request_hash, status, body, media_type, created_at = found
        return IdempotencyRecord(
            scope=scope,
            key=key,
            request_hash=request_hash,
            status=status,
            body=body,
            media_type=media_type,
            created_at=created_at,
        )

    async def put(self, record: IdempotencyRecord) -> IdempotencyRecord:
        return await self._run(self._put_record, record)

    def _put_record(self, record: IdempotencyRecord) -> IdempotencyRecord:
        self._write(sql.INSERT_RECORD, [_record_row(record)])
        return self._get_record(record.scope, record.key) or record

    async def prune(self, older_than: float) -> int:
        return await self._run(self._write, sql.PRUNE_RECORDS, [(older_than,)])


def _record_row(r: IdempotencyRecord) -> tuple[object, ...]:
    return (r.scope, r.key, r.request_hash, r.status, r.body, r.media_type, r.created_at)


def _move_fence(db: sqlite3.Connection, fence: Fence) -> None:
    if fence.expected_version == 0:
        moved = db.execute(sql.CREATE_FENCE, (fence.key,)).rowcount
    else:
        moved = db.execute(sql.MOVE_FENCE, (fence.key, fence.expected_version)).rowcount
    if moved != 1:
        raise StaleFenceError(f"fence {fence.key!r} is not at {fence.expected_version}")


def _check_anchors(db: sqlite3.Connection, anchors: list[tuple[str, int]]) -> None:
    """Each stream continuing in this batch must hold the sequence just before its first new
    one (no gap); the unique (stream, sequence) constraint catches the other side (overlap)."""
    if not anchors:
        return
    (found,) = db.execute(sql.COUNT_ANCHORS, (msgspec.json.encode(anchors),)).fetchone()
    if found != len(anchors):
        raise ConcurrencyError("a stream of the batch does not continue from its last event")


def _conflict(message: str) -> EventStoreError:
    if "events.event_id" in message:
        return DuplicateEventError("an event id of the batch is already stored")
    if "processed.message_id" in message:
        return DuplicateMessageError("a message id of the batch is already processed")
    return ConcurrencyError(f"a stream of the batch was written concurrently ({message})")


def _event_rows(events: Sequence[NewEvent]) -> list[tuple[object, ...]]:
    # A batch's events share one occurred_at: convert each distinct time once (this runs in
    # the store's thread and holds the GIL the decide loop also needs).
    micros: dict[datetime, int] = {}
    rows: list[tuple[object, ...]] = []
    for e in events:
        at = micros.get(e.occurred_at)
        if at is None:
            at = micros[e.occurred_at] = _micros(e.occurred_at)
        rows.append(
            (
                e.stream_id,
                e.sequence,
                e.event_id.bytes,
                e.type,
                e.data,
                at,
                e.correlation_id,
                e.causation_id,
                e.traceparent,
            )
        )
    return rows
