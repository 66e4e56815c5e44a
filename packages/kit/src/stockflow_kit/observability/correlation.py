"""Correlation and causation ids carried in :mod:`contextvars`.

A *correlation id* names one piece of work as it crosses services: it arrives on the
``X-Correlation-ID`` header (or is generated), is bound for the duration of the request or
message, is written on every log line, and is forwarded on every outgoing call and message.
A *causation id* is the id of the message that caused the current work.

The functions here know nothing of HTTP or logging; middleware, the HTTP client, the log
processors and the message envelope all read and write the same context variables.
"""

from __future__ import annotations

import random
import re
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Final

__all__ = [
    "CAUSATION_HEADER",
    "CORRELATION_HEADER",
    "bind_correlation",
    "get_causation_id",
    "get_correlation_id",
    "is_valid_correlation_id",
    "new_correlation_id",
]

CORRELATION_HEADER = "X-Correlation-ID"
"""The HTTP header (and message header) that carries the correlation id."""

CAUSATION_HEADER = "X-Causation-ID"
"""The message header that carries the id of the message that caused this one."""

_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")

_correlation_id: ContextVar[str | None] = ContextVar("stockflow_correlation_id", default=None)
_causation_id: ContextVar[str | None] = ContextVar("stockflow_causation_id", default=None)


_UUID4_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET: Final = (0x4000 << 64) | (0x8000 << 48)


def new_correlation_id() -> str:
    """Return a fresh correlation id (a UUID4 in its 32-hex-digit form).

    128 random bits with the version and variant bits set, as :func:`uuid.uuid4` sets them,
    drawn from :mod:`random` (reseeded in each forked child) instead of ``os.urandom``: a
    correlation id names a piece of work, it guards nothing, and the ``getrandom`` system
    call was about 5% of a server's CPU samples on a trivial route.
    """
    return f"{random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"


def is_valid_correlation_id(value: str | None) -> bool:
    """Tell whether *value* is acceptable as a correlation id from outside.

    Accepted: 8 to 128 characters of ``[A-Za-z0-9._:-]``, starting with a letter or digit.
    Anything else (empty, too long, spaces, control characters, header-injection attempts)
    is rejected, and the caller replaces it with :func:`new_correlation_id`.
    """
    return value is not None and _VALID.match(value) is not None


def get_correlation_id() -> str | None:
    """Return the correlation id bound in the current context, or ``None``."""
    return _correlation_id.get()


def get_causation_id() -> str | None:
    """Return the causation id bound in the current context, or ``None``."""
    return _causation_id.get()


class bind_correlation:  # lower case: a context manager used like a function
    """Bind *correlation_id* (and optionally *causation_id*) for the duration of a block.

    ::

        with bind_correlation("req-12345678") as correlation_id:
            ...

    The previous values are restored on exit, also on error, so nested work and concurrent
    tasks never see each other's ids. ``with`` gives the bound correlation id. A class, not
    a generator: it is entered on every request and message.
    """

    __slots__ = ("_causation_id", "_causation_token", "_correlation_id", "_token")

    def __init__(self, correlation_id: str, causation_id: str | None = None) -> None:
        self._correlation_id = correlation_id
        self._causation_id = causation_id

    def __enter__(self) -> str:
        self._token: Token[str | None] = _correlation_id.set(self._correlation_id)
        self._causation_token: Token[str | None] = _causation_id.set(self._causation_id)
        return self._correlation_id

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        _causation_id.reset(self._causation_token)
        _correlation_id.reset(self._token)
