"""Idempotency-Key for Starlette and FastAPI routes: replay the first answer, refuse a changed body.

A route hands its request to :meth:`Idempotency.handle` with a handler that applies the
effect::

    idem = Idempotency(store, caller=lambda request: request.state.user_id)

    @app.post("/receipts")
    async def receive(request: Request) -> Response:
        body = await request.body()

        async def apply(ctx: IdempotencyContext | None) -> Handled:
            ...  # apply the effect (deduped by ctx.message_id), build the answer
            return Handled(201, answer)

        return await idem.handle(request, body, apply)

With a key, the answer is stored under ``(scope, key)``, where the **scope** is the matched
route template with its method and the caller (``"POST /receipts|alice"``), so the same key
on another route or from another caller is another key. A retry whose **request hash**
(:func:`idempotency_request_hash`) is the same gets the stored answer again, with
``Idempotent-Replayed: true``; one with another hash gets :class:`IdempotencyConflictError`
(409).

**The atomic path.** A store that can write on the caller's connection
(``SqliteIdempotencyStore.add``, ``PostgresIdempotencyStore.add``) lets the handler commit
``ctx.record(...)`` in the transaction of its effect and return ``Handled(...,
recorded=True)``: a crash can then never leave an effect without its answer. If ``add``
returns ``False`` (a concurrent request with this key committed first), roll back and return
``Handled(..., duplicate=True)``. Otherwise the helper stores the record (``put``, first
wins) after the handler returns, and a crash in between leaves the effect unanswered: such a handler
must dedupe its effect by ``ctx.message_id`` and return ``duplicate=True`` when it finds it
applied. For a duplicate the helper re-reads the record: it replays it, or answers 409
(another hash), or, when there is none (the first request is still in flight, or its record
was pruned), :class:`IdempotencyInProgressError` (409, "retry later").

Within one :class:`Idempotency` (one process), requests with the same scope and key run one
at a time, so a concurrent retry waits for the first and replays its answer. Exceptions from
the handler are not recorded: a retry runs the handler again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from stockflow_kit.http._client_runner import IDEMPOTENCY_KEY_HEADER
from stockflow_kit.http._idempotency_key import (
    DEFAULT_MAX_IDEMPOTENCY_KEY_LENGTH,
    IDEMPOTENCY_ERRORS,
    IDEMPOTENT_REPLAYED_HEADER,
    IdempotencyConflictError,
    IdempotencyError,
    IdempotencyInProgressError,
    IdempotencyKeyRequiredError,
    InvalidIdempotencyKeyError,
    idempotency_key_parameter,
    parse_idempotency_key,
)
from stockflow_kit.http._idempotency_request import (
    IDEMPOTENCY_NAMESPACE,
    Handled,
    IdempotencyContext,
    IdempotencyHandler,
    idempotency_message_id,
    idempotency_request_hash,
)
from stockflow_kit.http._idempotency_sql import PostgresIdempotencyStore, SqliteIdempotencyStore
from stockflow_kit.http._idempotency_store import (
    DEFAULT_IDEMPOTENCY_RETENTION,
    IdempotencyRecord,
    IdempotencyStore,
    InMemoryIdempotencyStore,
)
from stockflow_kit.http._routes import route_template

__all__ = [
    "DEFAULT_IDEMPOTENCY_CALLER",
    "DEFAULT_IDEMPOTENCY_RETENTION",
    "DEFAULT_MAX_IDEMPOTENCY_KEY_LENGTH",
    "IDEMPOTENCY_ERRORS",
    "IDEMPOTENCY_NAMESPACE",
    "IDEMPOTENT_REPLAYED_HEADER",
    "Handled",
    "Idempotency",
    "IdempotencyConflictError",
    "IdempotencyContext",
    "IdempotencyError",
    "IdempotencyHandler",
    "IdempotencyInProgressError",
    "IdempotencyKeyRequiredError",
    "IdempotencyRecord",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "InvalidIdempotencyKeyError",
    "PostgresIdempotencyStore",
    "SqliteIdempotencyStore",
    "idempotency_key_parameter",
    "idempotency_message_id",
    "idempotency_request_hash",
]

DEFAULT_IDEMPOTENCY_CALLER: Final = "anyone"
"""The caller part of the scope when :class:`Idempotency` is given no ``caller``."""

_IN_PROGRESS_DETAIL: Final = (
    "A request with this Idempotency-Key has been applied, but its answer is not available:"
    " it is still being processed (retry shortly with the same key), or its record has"
    " expired (send a new request with a new key)."
)


class _Slot:
    """One (scope, key) being handled in this process, and how many requests want it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock, self.users = asyncio.Lock(), 0


class Idempotency:
    """Idempotency-Key handling for a service's routes; one per application.

    Args:
        store: Where the answers are kept.
        header: The request header carrying the key.
        max_key_length: The longest key accepted, in characters.
        caller: Names the caller of a request, the second half of the scope; every request
            is from :data:`DEFAULT_IDEMPOTENCY_CALLER` when ``None`` (the default). Pass the
            authenticated identity (``"service"`` on internal routes, the user id on
            public ones), never a value the client can choose freely.
        clock: The time of new records, in Unix seconds; :func:`time.time` by default.
    """

    def __init__(
        self,
        store: IdempotencyStore,
        *,
        header: str = IDEMPOTENCY_KEY_HEADER,
        max_key_length: int = DEFAULT_MAX_IDEMPOTENCY_KEY_LENGTH,
        caller: Callable[[Request], str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.header, self.max_key_length = store, header, max_key_length
        self._caller = caller or (lambda _request: DEFAULT_IDEMPOTENCY_CALLER)
        self._clock = clock
        self._slots: dict[tuple[str, str], _Slot] = {}

    def key_of(self, request: Request) -> str | None:
        """Return the request's key, or ``None`` without the header.

        Raises:
            InvalidIdempotencyKeyError: The header is malformed or repeated.
        """
        values = request.headers.getlist(self.header)
        return parse_idempotency_key(values, header=self.header, max_length=self.max_key_length)

    def scope_of(self, request: Request) -> str:
        """Return ``"<METHOD> <route template>|<caller>"`` for a routed request.

        The template is that of the route the router matched, after the mount prefixes
        and the ASGI ``root_path`` (so two mounts of one router are two scopes); a request
        that was not routed (a bare ASGI app) uses its actual path instead.
        """
        template = route_template(request.scope) or request.url.path
        return f"{request.method} {template}|{self._caller(request)}"

    def openapi_parameter(self, *, required: bool = False) -> dict[str, object]:
        """Return :func:`idempotency_key_parameter` for this helper's header and key length."""
        return idempotency_key_parameter(
            required=required, header=self.header, max_length=self.max_key_length
        )

    async def handle(
        self,
        request: Request,
        body: bytes,
        handler: IdempotencyHandler,
        *,
        required: bool = False,
    ) -> Response:
        """Answer *request* (whose body is *body*) by running *handler* at most once per key.

        Without a key, ``handler(None)`` runs and its answer is returned. With one, the
        stored answer is replayed if the same request was answered before; otherwise
        ``handler(ctx)`` runs and its answer is stored (unless it recorded it itself), as
        the module docstring describes.

        Args:
            request: The request.
            body: Its body, as read by the route (``await request.body()``).
            handler: Applies the effect and returns a :class:`Handled`.
            required: Refuse requests without a key.

        Raises:
            IdempotencyKeyRequiredError: *required* and there is no key.
            InvalidIdempotencyKeyError: The key is malformed.
            IdempotencyConflictError: The key was used in this scope with another request.
            IdempotencyInProgressError: The effect was applied by an earlier request whose
                answer is not stored (still in flight elsewhere, or pruned).
        """
        key = self.key_of(request)
        if key is None:
            if required:
                msg = f"this request requires an {self.header} header"
                raise IdempotencyKeyRequiredError(msg)
            return _response(await handler(None))
        scope = self.scope_of(request)
        query: bytes = request.scope.get("query_string", b"")
        digest = idempotency_request_hash(request.method, request.url.path, query, body)
        async with self._exclusive(scope, key):
            stored = await self.store.get(scope, key)
            if stored is not None:
                return _replay(stored, digest)
            ctx = IdempotencyContext(
                scope=scope,
                key=key,
                request_hash=digest,
                message_id=idempotency_message_id(scope, key),
                clock=self._clock,
            )
            handled = await handler(ctx)
            if handled.duplicate:
                stored = await self.store.get(scope, key)
                if stored is None:
                    raise IdempotencyInProgressError(_IN_PROGRESS_DETAIL, key=key)
                return _replay(stored, digest)
            if handled.recorded:
                return _response(handled)
            record = ctx.record(handled.status, handled.body, handled.media_type)
            stored = await self.store.put(record)
            return _response(handled) if stored == record else _replay(stored, digest)

    @contextlib.asynccontextmanager
    async def _exclusive(self, scope: str, key: str) -> AsyncIterator[None]:
        slot = self._slots.setdefault((scope, key), _Slot())
        slot.users += 1
        try:
            async with slot.lock:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[scope, key]


def _response(handled: Handled) -> Response:
    return Response(handled.body, status_code=handled.status, media_type=handled.media_type)


def _replay(stored: IdempotencyRecord, digest: str) -> Response:
    if stored.request_hash != digest:
        msg = f"this Idempotency-Key was already used with a different request: {stored.key!r}"
        raise IdempotencyConflictError(msg, key=stored.key)
    return Response(
        stored.body,
        status_code=stored.status,
        media_type=stored.media_type,
        headers={IDEMPOTENT_REPLAYED_HEADER: "true"},
    )
