"""What a request with an Idempotency-Key is, to a handler: its hash, message id and context.

Public through :mod:`stockflow_kit.http.idempotency`.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from stockflow_kit.http._idempotency_store import IdempotencyRecord

__all__ = [
    "IDEMPOTENCY_NAMESPACE",
    "Handled",
    "IdempotencyContext",
    "IdempotencyHandler",
    "idempotency_message_id",
    "idempotency_request_hash",
]

IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("6f1d0c3e-8a52-4f0b-9c2e-5b7a4d1e9f30")
"""The uuid5 namespace of :func:`idempotency_message_id`."""


def idempotency_request_hash(method: str, path: str, query: bytes, body: bytes) -> str:
    """Return the hex SHA-256 that tells a retry from another request under the same key.

    ``sha256(len(m) ‖ m ‖ len(p) ‖ p ‖ len(q) ‖ q ‖ len(b) ‖ b)`` over the method, the
    actual path, the raw query string and the body, each length an 8-byte big-endian
    prefix (so no two different requests share the concatenation). The query is hashed as
    sent: ``?a=1&b=2`` and ``?b=2&a=1`` are different requests.
    """
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def idempotency_message_id(scope: str, key: str) -> str:
    """Return the message id of the effect of *key* in *scope*: the same on every retry.

    ``str(uuid5(IDEMPOTENCY_NAMESPACE, scope + "\\n" + key))``; a key has no newline, so
    the name is unambiguous. Record it in the service's inbox with the effect to drop a
    second application.
    """
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{scope}\n{key}"))


@dataclass(frozen=True, kw_only=True)
class IdempotencyContext:
    """What a handler gets for a request with a key.

    Attributes:
        scope: The record's scope, ``"<METHOD> <route template>|<caller>"``.
        key: The Idempotency-Key.
        request_hash: The request's :func:`idempotency_request_hash`.
        message_id: :func:`idempotency_message_id` the scope and key.
        clock: The helper's clock; :meth:`record` dates records with it.
    """

    scope: str
    key: str
    request_hash: str
    message_id: str
    clock: Callable[[], float] = field(default=time.time, repr=False)

    def record(
        self, status: int, body: bytes, media_type: str = "application/json"
    ) -> IdempotencyRecord:
        """Return the record of this answer, created now (by the helper's clock)."""
        return IdempotencyRecord(
            scope=self.scope,
            key=self.key,
            request_hash=self.request_hash,
            status=status,
            body=body,
            media_type=media_type,
            created_at=self.clock(),
        )


@dataclass(frozen=True)
class Handled:
    """What a handler returns: its answer, and what it did with the record.

    Attributes:
        status: The HTTP status code.
        body: The body.
        media_type: The media type; ``application/json`` by default.
        recorded: The handler committed ``ctx.record(status, body, media_type)`` with its
            effect; the helper stores nothing.
        duplicate: The effect had already been applied by an earlier request with this key
            (the handler's inbox said so, or ``add`` returned ``False``); the helper answers
            from the stored record, and *status* and *body* are not used.
    """

    status: int
    body: bytes
    media_type: str = "application/json"
    recorded: bool = False
    duplicate: bool = False


IdempotencyHandler: TypeAlias = Callable[[IdempotencyContext | None], Awaitable[Handled]]
"""Applies a request's effect; given ``None`` for a request without a key."""
