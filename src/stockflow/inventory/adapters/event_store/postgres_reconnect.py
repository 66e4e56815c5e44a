"""Retrying an event store operation while PostgreSQL is unreachable (``reconnecting``).

A lost connection (the server restarting, crashing or failing over) is retried: the operation
runs again on a fresh pool connection, with full-jitter backoff
(``stockflow_kit.resilience.retrying``, ``on=EventStoreUnavailableError``, logged as
``stamina.retry_scheduled``), until its store's ``reconnect_timeout``. Each attempt is bounded
by ``attempt_timeout``: the retry budget only limits when a new attempt may start, so without
it one attempt stuck on a half-dead connection (a server shutting down, a socket that
connected to itself while the port was free) would hold the caller for ever.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

import asyncpg

from stockflow.inventory.service_layer.ports import EventStoreUnavailableError
from stockflow_kit.resilience import retrying

__all__ = ["Reconnects", "reconnecting"]

P = ParamSpec("P")
T = TypeVar("T")

_CONNECTION_LOST: Final = (
    OSError,  # refused or reset: the server is down or restarting
    TimeoutError,  # connecting took longer than asyncpg's timeout, or an attempt too long
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection closed mid-query
    asyncpg.CannotConnectNowError,  # 57P03: the server is starting up or recovering
    asyncpg.AdminShutdownError,  # 57P01: pg_ctl stop -m fast | immediate, or terminated
    asyncpg.CrashShutdownError,  # 57P02: another backend crashed, every session is reset
    asyncpg.TooManyConnectionsError,  # 53300: e.g. while the old sessions still linger
    asyncpg.InterfaceError,  # "connection is closed", e.g. under a transaction's rollback
    # A pooled connection whose session the server ended while it sat idle can be handed out
    # still "consuming an error" (MagicStack/asyncpg#784, #1069); the pool drops it when its
    # reset fails, so the next attempt gets another one. Raised before anything is sent.
    asyncpg.InternalClientError,
)
_RECONNECT_ATTEMPTS: Final = 40
"""Bounds the attempts also in stamina's test mode, where the backoff is zero."""


class Reconnects(Protocol):
    reconnect_timeout: float
    """Seconds after which an operation stops retrying and raises."""
    attempt_timeout: float
    """Seconds one attempt may take before it counts as a lost connection."""


S = TypeVar("S", bound=Reconnects)


def reconnecting(
    method: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Run ``method`` again while the connection is lost, for up to ``self.reconnect_timeout``
    seconds; then raise :class:`EventStoreUnavailableError`."""
    name = method.__qualname__  # e.g. PostgresEventStore.commit; arguments stay out of the logs

    @functools.wraps(method)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        async for attempt in retrying(
            on=EventStoreUnavailableError,
            attempts=_RECONNECT_ATTEMPTS,
            timeout=self.reconnect_timeout,
            wait_initial=0.05,
            wait_max=1.0,
            name=name,
        ):
            with attempt:
                try:
                    async with asyncio.timeout(self.attempt_timeout):
                        return await method(self, *args, **kwargs)
                except _CONNECTION_LOST as error:
                    msg = f"PostgreSQL is unreachable ({name}): {error!r}"
                    raise EventStoreUnavailableError(msg) from error
        raise AssertionError("unreachable: the last attempt returns or raises")

    return call
