"""The Idempotency-Key header: its syntax, its errors and their problems, its OpenAPI entry.

Public through :mod:`stockflow_kit.http.idempotency`. The exception tree::

    IdempotencyError
     ├── InvalidIdempotencyKeyError      422  the header is malformed
     ├── IdempotencyKeyRequiredError     400  the route requires the header, none was sent
     └── IdempotencyConflictError        409  the key was used with another request
          └── IdempotencyInProgressError 409  the key's effect is applied, no answer stored
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from stockflow_kit.http._client_runner import IDEMPOTENCY_KEY_HEADER
from stockflow_kit.http._idempotency_store import DEFAULT_IDEMPOTENCY_RETENTION

__all__ = [
    "DEFAULT_MAX_IDEMPOTENCY_KEY_LENGTH",
    "IDEMPOTENCY_ERRORS",
    "IDEMPOTENT_REPLAYED_HEADER",
    "IdempotencyConflictError",
    "IdempotencyError",
    "IdempotencyInProgressError",
    "IdempotencyKeyRequiredError",
    "InvalidIdempotencyKeyError",
    "idempotency_key_parameter",
    "parse_idempotency_key",
]

DEFAULT_MAX_IDEMPOTENCY_KEY_LENGTH: Final = 200
"""The longest key accepted by default: room for a UUID, a ULID or a prefixed random token."""

IDEMPOTENT_REPLAYED_HEADER: Final = "Idempotent-Replayed"
"""The response header (value ``true``) marking an answer replayed from a stored record."""

_KEY: Final = re.compile(r"[\x20-\x7e]*")  # printable ASCII, space included


class IdempotencyError(Exception):
    """Base of the errors of Idempotency-Key handling."""


class InvalidIdempotencyKeyError(IdempotencyError):
    """The Idempotency-Key header is empty, too long, repeated, or not printable ASCII."""


class IdempotencyKeyRequiredError(IdempotencyError):
    """The route requires an Idempotency-Key header and the request has none."""


class IdempotencyConflictError(IdempotencyError):
    """The Idempotency-Key was used before, in this scope, with another request.

    Attributes:
        key: The key.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class IdempotencyInProgressError(IdempotencyConflictError):
    """The key's effect has been applied but no answer is stored for it.

    Either the first request is still being processed (another process, or one that
    crashed between its effect and its record on the non-atomic path), or its record has
    been pruned. The client should retry later with the same key, or send a new request
    with a new key.
    """


IDEMPOTENCY_ERRORS: Final[Mapping[type[BaseException], tuple[int, str, str]]] = {
    InvalidIdempotencyKeyError: (422, "Invalid Idempotency-Key", "invalid-idempotency-key"),
    IdempotencyKeyRequiredError: (400, "Idempotency-Key required", "idempotency-key-required"),
    IdempotencyConflictError: (409, "Idempotency-Key reused", "idempotency-key-reused"),
    IdempotencyInProgressError: (
        409,
        "Request with this Idempotency-Key in progress",
        "idempotency-key-in-progress",
    ),
}
"""Rows ``{exception: (status, title, slug)}`` for a service's
:class:`~stockflow_kit.http.ErrorTable`: ``ErrorTable({**MY_ERRORS, **IDEMPOTENCY_ERRORS})``
or ``table.update(IDEMPOTENCY_ERRORS)``.

A missing key is 400, not 428: 428 Precondition Required (RFC 6585) is about conditional
requests (``If-Match``), and the IETF Idempotency-Key draft
(draft-ietf-httpapi-idempotency-key-header) asks for 400 when a required key is missing.
"""


def parse_idempotency_key(
    values: list[str], *, header: str = IDEMPOTENCY_KEY_HEADER, max_length: int
) -> str | None:
    """Return the key carried by the header's *values* (all of its occurrences), or ``None``.

    A key is 1 to *max_length* printable ASCII characters (``0x20``-``0x7e``), not all
    spaces, after the surrounding spaces and tabs are dropped (RFC 9110 section 5.5, as
    HTTP servers do). It is otherwise taken as sent: the structured-field string form of the IETF draft
    (``"abc"``, quotes included) is a key too, the same on every retry of that client.

    Raises:
        InvalidIdempotencyKeyError: The header is repeated or its value is not a key.
    """
    if not values:
        return None
    if len(values) > 1:
        msg = f"send one {header} header, not {len(values)}"
        raise InvalidIdempotencyKeyError(msg)
    key = values[0].strip(" \t")  # optional whitespace is not part of a field value
    if not (0 < len(key) <= max_length and _KEY.fullmatch(key)):
        msg = f"{header} must be 1 to {max_length} printable ASCII characters"
        raise InvalidIdempotencyKeyError(msg)
    return key


def idempotency_key_parameter(
    *,
    required: bool = False,
    header: str = IDEMPOTENCY_KEY_HEADER,
    max_length: int = DEFAULT_MAX_IDEMPOTENCY_KEY_LENGTH,
    retention: float = DEFAULT_IDEMPOTENCY_RETENTION,
) -> dict[str, object]:
    """Return the OpenAPI 3 parameter object documenting the Idempotency-Key header.

    For FastAPI, pass it in ``openapi_extra`` (FastAPI appends it to the route's own
    parameters)::

        @app.post("/receipts", openapi_extra={"parameters": [idempotency_key_parameter()]})

    Args:
        required: Whether the route requires the header (see ``handle(required=...)``).
        header: The header name.
        max_length: The longest key accepted (the ``maxLength`` of the schema).
        retention: How long, in seconds, a key is remembered (said in the description).
    """
    hours = retention / 3600
    return {
        "name": header,
        "in": "header",
        "required": required,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": max_length,
            "pattern": "^[\\x20-\\x7e]*[\\x21-\\x7e][\\x20-\\x7e]*$",
        },
        "description": (
            "A client-chosen key (printable ASCII, such as a UUID) that makes a retry safe."
            " A retry with the same key and the same request replays the first answer"
            f" (with `{IDEMPOTENT_REPLAYED_HEADER}: true`); the same key with another request is 409."
            f" Keys are scoped per route and caller and remembered for {hours:g} hours."
            + (" Required: a request without it is 400." if required else "")
        ),
    }
