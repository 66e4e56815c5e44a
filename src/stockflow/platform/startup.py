"""Start-up failures said in one line: which dependency, what happened, what to run.

A service that cannot reach its database or its bus at start must not die with a driver's
traceback. :func:`explain` walks the exception chain and names the dependency by its URL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from typing import Final
from urllib.parse import urlsplit

__all__ = ["HOW_TO_START", "StartupError", "explain", "redact_url"]

HOW_TO_START: Final = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "nats": (
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server --"
        " -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log"
    ),
}


class StartupError(RuntimeError):
    """A service could not start; the message is one line meant for a person."""


def redact_url(url: str) -> str:
    """*url* without its password (``postgresql://user:***@host/db``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            yield from (e for inner in current.exceptions for e in _chain(inner))
        current = current.__cause__ or current.__context__


def _kind(url: str) -> str:
    scheme = urlsplit(url).scheme
    return {"postgres": "postgresql", "tls": "nats"}.get(scheme, scheme)


def explain(service: str, error: BaseException, urls: Mapping[str, str]) -> str:
    """One line saying why *service* could not start.

    Args:
        service: The service's name.
        error: What start-up raised.
        urls: Its dependencies by role (``{"event store": "postgresql://…", "bus": "nats://…"}``).
    """
    chain = list(_chain(error))
    names = {type(e).__name__ for e in chain}
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for role, url in urls.items():
        kind = _kind(url)
        shown = redact_url(url)
        if kind == "postgresql" and names & {
            "InvalidCatalogNameError",
            "InvalidPasswordError",
            "InvalidAuthorizationSpecificationError",
            "CannotConnectNowError",
            "ConnectionRefusedError",
            "PostgresConnectionError",
            "EventStoreUnavailableError",
        }:
            return (
                f"{service}: cannot use its {role} at {shown} ({detail}); is PostgreSQL running?"
                f" Start it with: {HOW_TO_START['postgresql']}"
            )
        if kind == "nats" and names & {
            "NoServersError",
            "ConnectionRefusedError",
            "MessagingError",
            "SubscribeError",
            "PublishError",
            "TimeoutError",
        }:
            return (
                f"{service}: cannot reach its {role} at {shown} ({detail}); is NATS JetStream"
                f" running? Start it with: {HOW_TO_START['nats']}"
            )
        if kind == "sqlite" and any(isinstance(e, sqlite3.Error | OSError) for e in chain):
            path = url.removeprefix("sqlite:///")
            return (
                f"{service}: cannot open its {role} {path} ({detail}); check that the data dir"
                " exists, is writable and holds stockflow files (or choose another --data-dir)"
            )
    return f"{service}: could not start: {type(error).__name__}: {detail}"
