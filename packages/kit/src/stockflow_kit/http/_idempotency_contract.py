"""The contract suite of the Idempotency-Key store; public in :mod:`stockflow_kit.http.testing`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import ClassVar

import pytest

from stockflow_kit.http._idempotency_store import IdempotencyRecord, IdempotencyStore

__all__ = ["IdempotencyStoreContract", "make_record"]

_T0 = 1_700_000_000.0


def make_record(
    key: str = "key-1",
    *,
    scope: str = "POST /things/{id}|service",
    request_hash: str = "hash-1",
    status: int = 201,
    body: bytes = b'{"id": 1}',
    media_type: str = "application/json",
    created_at: float = _T0,
) -> IdempotencyRecord:
    """Return a record with these fields (every one has a default)."""
    return IdempotencyRecord(
        scope=scope,
        key=key,
        request_hash=request_hash,
        status=status,
        body=body,
        media_type=media_type,
        created_at=created_at,
    )


class IdempotencyStoreContract:
    """What every :class:`~stockflow_kit.http.idempotency.IdempotencyStore` must do.

    Subclass it once per store in a test module (the base has no ``Test`` prefix, so pytest
    collects only the subclasses). The fixture interface:

    * ``store`` (fixture, **required**): a started store **with no records**, for one test;
      close it after the test.
    * ``durable`` (class flag, default ``False``) and :meth:`reopened` (required when
      durable): the records survive closing the store and opening a new one on the same
      storage. ``not_durable_reason`` is the skip reason otherwise.
    * ``atomic`` (class flag, default ``False``) and :meth:`add_in_transaction` (required
      when atomic): the store can write a record inside a transaction of the caller, so it
      commits or rolls back with the caller's effect. ``not_atomic_reason`` is the skip
      reason otherwise.

    The suite needs pytest with pytest-asyncio in auto mode. Example::

        class TestSqliteIdempotencyStore(IdempotencyStoreContract):
            durable = atomic = True

            @pytest.fixture
            async def store(self, tmp_path):
                store = SqliteIdempotencyStore(str(tmp_path / "idem.sqlite3"))
                await store.start()
                yield store
                await store.close()
    """

    durable: ClassVar[bool] = False
    not_durable_reason: ClassVar[str] = "this store keeps its records in memory only"
    atomic: ClassVar[bool] = False
    not_atomic_reason: ClassVar[str] = "this store cannot write in a caller's transaction"

    @pytest.fixture
    def store(self) -> IdempotencyStore:
        """A started store with no records; subclasses must override this fixture."""
        raise NotImplementedError

    def reopened(
        self, store: IdempotencyStore
    ) -> contextlib.AbstractAsyncContextManager[IdempotencyStore]:
        """Close *store*, then open, yield and finally close a new store on its storage."""
        raise NotImplementedError

    async def add_in_transaction(
        self, store: IdempotencyStore, record: IdempotencyRecord, *, commit: bool
    ) -> bool:
        """Begin a transaction on *store*'s storage, ``add`` *record* in it, then commit it
        (*commit*) or roll it back; return what ``add`` returned (``True``: written)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- get and put

    async def test_get_of_a_missing_key_is_none(self, store: IdempotencyStore) -> None:
        assert await store.get("POST /things/{id}|service", "never-used") is None

    async def test_a_put_record_is_returned_by_put_and_by_get(
        self, store: IdempotencyStore
    ) -> None:
        record = make_record(body=b"\x00\xff binary \r\n", media_type="application/problem+json")

        assert await store.put(record) == record
        assert await store.get(record.scope, record.key) == record

    async def test_the_first_put_wins(self, store: IdempotencyStore) -> None:
        first = make_record(request_hash="hash-1", status=201, body=b"first")
        second = make_record(request_hash="hash-2", status=200, body=b"second")
        await store.put(first)

        assert await store.put(second) == first
        assert await store.get(first.scope, first.key) == first

    async def test_the_same_key_in_two_scopes_is_two_records(self, store: IdempotencyStore) -> None:
        receipts = make_record(scope="POST /inventory/{sku}/receipts|service", body=b"r")
        reservations = make_record(scope="POST /internal/reservations|service", body=b"s")
        by_user = make_record(scope="POST /inventory/{sku}/receipts|zoë", body=b"u")

        stored = [await store.put(r) for r in (receipts, reservations, by_user)]

        assert stored == [receipts, reservations, by_user]
        assert [await store.get(r.scope, r.key) for r in stored] == stored

    async def test_concurrent_puts_of_one_key_all_return_the_same_record(
        self, store: IdempotencyStore
    ) -> None:
        records = [make_record(request_hash=f"hash-{n}", body=b"%d" % n) for n in range(8)]

        stored = await asyncio.gather(*(store.put(r) for r in records))

        assert len(set(stored)) == 1
        assert stored[0] in records
        assert await store.get(stored[0].scope, stored[0].key) == stored[0]

    # ---------------------------------------------------------------- prune

    async def test_prune_removes_only_older_records_and_counts_them(
        self, store: IdempotencyStore
    ) -> None:
        for n, at in enumerate((_T0 - 2.0, _T0 - 1.0, _T0, _T0 + 1.0)):
            await store.put(make_record(f"key-{n}", created_at=at))

        assert await store.prune(_T0) == 2
        kept = [await store.get(make_record().scope, f"key-{n}") for n in range(4)]
        assert [r.created_at if r else None for r in kept] == [None, None, _T0, _T0 + 1.0]
        assert await store.prune(_T0) == 0

    async def test_a_pruned_key_can_be_taken_by_a_new_request(
        self, store: IdempotencyStore
    ) -> None:
        await store.put(make_record(request_hash="old", created_at=_T0))
        await store.prune(_T0 + 1.0)
        new = make_record(request_hash="new", created_at=_T0 + 2.0)

        assert await store.put(new) == new

    # ---------------------------------------------------------------- durability

    async def test_records_survive_reopening_the_store(self, store: IdempotencyStore) -> None:
        if not self.durable:
            pytest.skip(self.not_durable_reason)
        record = make_record()
        await store.put(record)

        async with self.reopened(store) as again:
            assert await again.get(record.scope, record.key) == record
            assert await again.put(make_record(request_hash="other")) == record

    # ---------------------------------------------------------------- atomic add

    async def test_a_record_added_in_a_rolled_back_transaction_does_not_exist(
        self, store: IdempotencyStore
    ) -> None:
        if not self.atomic:
            pytest.skip(self.not_atomic_reason)
        record = make_record()

        assert await self.add_in_transaction(store, record, commit=False) is True
        assert await store.get(record.scope, record.key) is None

    async def test_a_record_added_in_a_committed_transaction_exists(
        self, store: IdempotencyStore
    ) -> None:
        if not self.atomic:
            pytest.skip(self.not_atomic_reason)
        record = make_record()

        assert await self.add_in_transaction(store, record, commit=True) is True
        assert await store.get(record.scope, record.key) == record
        assert await store.put(make_record(request_hash="other")) == record

    async def test_adding_a_taken_key_reports_it_and_keeps_the_first_record(
        self, store: IdempotencyStore
    ) -> None:
        if not self.atomic:
            pytest.skip(self.not_atomic_reason)
        first = await store.put(make_record(request_hash="hash-1"))

        assert await self.add_in_transaction(store, make_record(request_hash="x"), commit=True) is (
            False
        )
        assert await store.get(first.scope, first.key) == first
