"""The Idempotency-Key store port, its value type and the in-memory adapter.

Public through :mod:`stockflow_kit.http.idempotency`; the SQL adapters are in
:mod:`._idempotency_sql`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "DEFAULT_IDEMPOTENCY_RETENTION",
    "IdempotencyRecord",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "checked_table",
]

DEFAULT_IDEMPOTENCY_RETENTION: Final = 24 * 3600.0
"""How long a record is kept, in seconds, before a scheduled prune may delete it: 24 hours.

A record must outlive every retry of its request, or the retry is taken for a new request
(and its effect applied again, unless the service also dedupes it by message id). Automated
retries end within seconds (``ResilientClient``'s ``total_timeout`` is 30 s; a saga step is
redelivered within minutes), but a client that lost an answer during an outage, or a person
re-submitting a form the next morning, may come back hours later. 24 hours covers a night
and an on-call fix, is what public APIs commonly promise (Stripe keeps keys 24 h), and keeps
the table bounded at about *write rate × 86 400* rows. Prune with::

    await store.prune(time.time() - DEFAULT_IDEMPOTENCY_RETENTION)

A service that keeps processed message ids longer (its inbox) should still answer retries
within this window from the record, never from the inbox.
"""

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")


def checked_table(table: str) -> str:
    """Return *table* if it is a plain SQL identifier of at most 48 characters.

    48, not 63, so that the index name ``<table>_created_at`` fits PostgreSQL's limit.

    Raises:
        ValueError: It is not.
    """
    if not _IDENTIFIER.match(table):
        msg = f"not a plain SQL identifier of at most 48 characters: {table!r}"
        raise ValueError(msg)
    return table


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotencyRecord:
    """The answer first given to a request carrying an Idempotency-Key.

    Attributes:
        scope: Where the key is valid: the route template with its method, then ``|`` and
            the caller, such as ``"POST /inventory/{sku}/receipts|service"``. The same key in
            another scope is another record.
        key: The client's Idempotency-Key.
        request_hash: Identifies the request (see :func:`~.idempotency.idempotency_request_hash`): a
            retry with another hash is a conflict, not a replay.
        status: The HTTP status code of the answer.
        body: The body of the answer.
        media_type: The media type of the answer, such as ``application/json``.
        created_at: When the record was made, in Unix seconds; prunes compare with it.
    """

    scope: str
    key: str
    request_hash: str
    status: int
    body: bytes
    media_type: str
    created_at: float


class IdempotencyStore(Protocol):
    """Where the first answer to each (scope, key) is kept, until pruned.

    Implementations: :class:`InMemoryIdempotencyStore` (tests, one process),
    :class:`~._idempotency_sql.SqliteIdempotencyStore`,
    :class:`~._idempotency_sql.PostgresIdempotencyStore` and
    :class:`~stockflow_kit.http.sqlalchemy.SqlAlchemyIdempotencyStore`; the SQL ones also
    write a record on the caller's connection (``add``), so it commits with the effect. All
    of them pass :class:`~stockflow_kit.http.testing.IdempotencyStoreContract`.
    """

    async def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        """Return the record of *key* in *scope*, or ``None``."""
        ...

    async def put(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """Store *record* unless its (scope, key) has one; return the stored one.

        The first record wins: the one returned may be an earlier record, with another
        request hash, status and body. Concurrent puts of one key all return the same record.
        """
        ...

    async def prune(self, older_than: float) -> int:
        """Delete the records created before *older_than* (Unix seconds); return how many.

        A record created exactly at *older_than* is kept.
        """
        ...


class InMemoryIdempotencyStore:
    """An :class:`IdempotencyStore` in a dict: for tests, and for one process that may forget.

    Nothing survives the process, so a restart forgets every key.
    """

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], IdempotencyRecord] = {}

    async def start(self) -> None:
        """Do nothing (here for symmetry with the SQL stores)."""

    async def close(self) -> None:
        """Do nothing; the records stay until the object is dropped."""

    async def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        """Return the record of *key* in *scope*, or ``None``."""
        return self._records.get((scope, key))

    async def put(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """Store *record* unless its (scope, key) has one; return the stored one."""
        return self._records.setdefault((record.scope, record.key), record)

    async def prune(self, older_than: float) -> int:
        """Delete the records created before *older_than*; return how many."""
        old = [k for k, record in self._records.items() if record.created_at < older_than]
        for k in old:
            del self._records[k]
        return len(old)
