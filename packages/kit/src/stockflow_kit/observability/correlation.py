"""Correlation and causation ids carried in :mod:`contextvars`.

A *correlation id* names one piece of work as it crosses services: it arrives on the
``X-Correlation-ID`` header (or is generated), is bound for the duration of the request or
message, is written on every log line, and is forwarded on every outgoing call and message.
A *causation id* is the id of the message that caused the current work.

The functions here know nothing of HTTP or logging; middleware, the HTTP client, the log
processors and the message envelope all read and write the same context variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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


def new_correlation_id() -> str:
    """Return a fresh correlation id (a UUID4 in its 32-hex-digit form).

    Built from 16 random bytes with the version and variant bits set, which is what
    :func:`uuid.uuid4` does, without its ``UUID`` object (a fifth of the cost per request).
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


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


@contextmanager
def bind_correlation(correlation_id: str, causation_id: str | None = None) -> Iterator[str]:
    """Bind *correlation_id* (and optionally *causation_id*) for the duration of a block.

    The previous values are restored on exit, also on error, so nested work and concurrent
    tasks never see each other's ids.

    Yields:
        The bound correlation id.
    """
    token = _correlation_id.set(correlation_id)
    causation_token = _causation_id.set(causation_id)
    try:
        yield correlation_id
    finally:
        _causation_id.reset(causation_token)
        _correlation_id.reset(token)
