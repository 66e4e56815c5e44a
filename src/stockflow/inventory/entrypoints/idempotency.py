"""Idempotency-Key handling for the HTTP writes: replay the first response, refuse a changed body.

The key is also turned into the command's message id (uuid5), so even when the stored response
is missing (a crash between the commit and saving it) the writer's inbox drops the replay.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from stockflow.inventory.service_layer.ports import EventStore, IdempotentResponse
from stockflow_kit.http import PROBLEM_MEDIA_TYPE

__all__ = [
    "IDEMPOTENCY_HEADER",
    "IdempotencyConflictError",
    "InvalidIdempotencyKeyError",
    "idempotency_key",
    "idempotent",
    "message_id_for",
]

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
_NAMESPACE: Final = uuid.UUID("0b7c1f5e-2d7a-5e8b-a1c4-6f3d9e0a2b71")
_MAX_KEY: Final = 200

Handler = Callable[[str | None], Awaitable[tuple[int, bytes]]]
"""Given the message id to use (``None``: make one), run the command; ``(status, body)``."""


class IdempotencyConflictError(Exception):
    """The Idempotency-Key was used before with another request."""


class InvalidIdempotencyKeyError(Exception):
    """The Idempotency-Key header is empty or too long."""


def message_id_for(key: str) -> str:
    """The message id a command sent with Idempotency-Key ``key`` is recorded under."""
    return str(uuid.uuid5(_NAMESPACE, key))


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key, if any; raises when it is empty or too long."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and (not key.strip() or len(key) > _MAX_KEY):
        raise InvalidIdempotencyKeyError(f"{IDEMPOTENCY_HEADER} must be 1 to {_MAX_KEY} characters")
    return key


def _response(status: int, body: bytes) -> Response:
    media = PROBLEM_MEDIA_TYPE if status >= 400 else "application/json"
    return Response(body, status_code=status, media_type=media)


async def idempotent(
    request: Request, body: bytes, store: EventStore, handler: Handler
) -> Response:
    """Run ``handler`` once per Idempotency-Key (if the request carries one)."""
    key = idempotency_key(request)
    if key is None:
        return _response(*await handler(None))
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    request_hash = digest.hexdigest()
    stored = await store.idempotent_response(key)
    if stored is None:
        status, content = await handler(message_id_for(key))
        stored = await store.save_idempotent_response(
            IdempotentResponse(key=key, request_hash=request_hash, status=status, body=content)
        )
    if stored.request_hash != request_hash:
        raise IdempotencyConflictError(
            f"{IDEMPOTENCY_HEADER} {key!r} was already used with a different request"
        )
    response = _response(stored.status, stored.body)
    return response
