"""The deprecated unscoped Idempotency-Key calls, on top of the scoped records (every store).

``EventStore.idempotent_response`` / ``save_idempotent_response`` predate
:class:`~stockflow.inventory.service_layer.ports.IdempotencyRecord`: they keep working, in
scope ``""``, until their last caller moves to ``get`` / ``put`` / ``CommitBatch.idempotency``.
Records migrated from the old unscoped tables are in that scope too.
"""

from __future__ import annotations

import time
from typing import Final

from stockflow.inventory.service_layer.ports import (
    IdempotencyRecord,
    IdempotencyRecords,
    IdempotentResponse,
)

__all__ = ["UNSCOPED", "legacy_get", "legacy_media_type", "legacy_put"]

UNSCOPED: Final = ""
"""The scope of the deprecated calls and of the records migrated from the unscoped tables."""


def legacy_media_type(status: int) -> str:
    """The media type the HTTP layer gives a stored response of ``status``: problem+json for
    errors (the old records kept no media type)."""
    return "application/problem+json" if status >= 400 else "application/json"


async def legacy_get(records: IdempotencyRecords, key: str) -> IdempotentResponse | None:
    record = await records.get(UNSCOPED, key)
    return None if record is None else _response(record)


async def legacy_put(
    records: IdempotencyRecords, response: IdempotentResponse
) -> IdempotentResponse:
    record = IdempotencyRecord(
        scope=UNSCOPED,
        key=response.key,
        request_hash=response.request_hash,
        status=response.status,
        body=response.body,
        media_type=legacy_media_type(response.status),
        created_at=time.time(),
    )
    return _response(await records.put(record))


def _response(record: IdempotencyRecord) -> IdempotentResponse:
    return IdempotentResponse(
        key=record.key, request_hash=record.request_hash, status=record.status, body=record.body
    )
