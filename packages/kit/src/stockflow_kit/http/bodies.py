"""JSON request bodies decoded by msgspec against a schema, and JSON answers.

``decode_json(request, body, Schema)`` checks the declared media type (``application/json``
or any ``+json``; none declared counts as JSON) and decodes in one C-level pass. What does
not fit raises :class:`InvalidBodyError` (422 in :data:`BODY_ERRORS`), a body declared as
something else :class:`UnsupportedMediaTypeError` (415). Add :data:`BODY_ERRORS` to the
service's :class:`~stockflow_kit.http.ErrorTable`.

JSON does not tell ``3`` from ``3.0``, and neither does a published schema's ``integer``: a
whole number written with a fraction is accepted as that number. Only that rare path pays a
second decode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "BODY_ERRORS",
    "InvalidBodyError",
    "UnsupportedMediaTypeError",
    "decode_json",
    "json_response",
]

_T = TypeVar("_T")
_JSON_TYPES: Final = ("application/json",)


class InvalidBodyError(Exception):
    """The request body is not valid JSON or does not fit the schema."""


class UnsupportedMediaTypeError(Exception):
    """The body is not declared as JSON."""


BODY_ERRORS: Final[Mapping[type[BaseException], tuple[int, str, str]]] = {
    InvalidBodyError: (422, "Invalid request body", "invalid-body"),
    UnsupportedMediaTypeError: (415, "Unsupported media type", "unsupported-media-type"),
}
"""Rows for a service's ``ErrorTable``: ``{error: (status, title, type slug)}``."""


def json_response(value: object, status: int = 200) -> Response:
    """*value* (anything msgspec encodes) as an ``application/json`` response."""
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def decode_json(request: Request, body: bytes, kind: type[_T]) -> _T:
    """*body* decoded as *kind*; see the module docstring.

    Raises:
        UnsupportedMediaTypeError: the request declares a non-JSON body.
        InvalidBodyError: the body is not JSON or does not fit *kind*.
    """
    media = request.headers.get("content-type", "application/json").split(";", 1)[0].strip()
    if media.lower() not in _JSON_TYPES and not media.lower().endswith("+json"):
        raise UnsupportedMediaTypeError(f"send the body as application/json, not {media!r}")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as error:
        if "got `float`" not in str(error):
            raise InvalidBodyError(str(error)) from None
        try:
            return msgspec.convert(_whole_numbers(msgspec.json.decode(body)), type=kind)
        except msgspec.ValidationError as again:
            raise InvalidBodyError(str(again)) from None
    except msgspec.DecodeError as error:
        raise InvalidBodyError(str(error)) from None


def _whole_numbers(value: object) -> object:
    """*value* with every float that is a whole number turned into an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    return value
