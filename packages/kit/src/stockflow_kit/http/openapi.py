"""OpenAPI pieces for routes that decode their bodies with msgspec: the document says what the
service really does (bodies, headers, problem responses, the credential).

FastAPI documents a body only when the route declares a pydantic model; a route that reads
``await request.body()`` and decodes it with msgspec (faster) documents nothing, so fuzzers
cannot build valid requests and clients cannot read the contract. These helpers produce the
``openapi_extra`` and ``responses`` of such routes::

    @app.post(
        "/inventory/{sku}/receipts",
        openapi_extra=json_body(ReceiptRequest, headers=[idempotency_header()]),
        responses=problem_responses(404, 409, 413, 415, 422),
    )
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from http.client import responses as reasons
from typing import TYPE_CHECKING, Any, Final

import msgspec

from stockflow_kit.http._problem import PROBLEM_MEDIA_TYPE

if TYPE_CHECKING:  # FastAPI is optional for the kit: only this helper needs it
    from fastapi import FastAPI

__all__ = [
    "PROBLEM_SCHEMA",
    "bearer_security",
    "idempotency_header",
    "json_body",
    "json_schema",
    "problem_responses",
    "require_bearer_in_openapi",
]

PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "correlation_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "correlation_id": {"type": "string"},
    },
    "additionalProperties": True,
}
"""The RFC 9457 problem every error response carries (plus ``correlation_id``)."""


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def json_schema(kind: Any) -> dict[str, Any]:
    """The JSON Schema of a msgspec type with every ``$ref`` inlined (OpenAPI 3.1 friendly)."""
    schema = msgspec.json.schema(kind)
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    return inlined


def idempotency_header(*, required: bool = False, max_length: int = 200) -> dict[str, Any]:
    """The ``Idempotency-Key`` header parameter."""
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": required,
        "description": "Retry-safe key: a replay with the same key and body returns the first"
        " answer; the same key with another body is a 409.",
        # Printable ASCII with at least one character that is not a space (the helper trims).
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": max_length,
            "pattern": "^[ -~]*[!-~][ -~]*$",
        },
    }


def json_body(
    kind: Any, *, headers: Sequence[Mapping[str, Any]] = (), required: bool = True
) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body decodes as *kind* (a msgspec type)."""
    extra: dict[str, Any] = {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": json_schema(kind)}},
        }
    }
    if headers:
        extra["parameters"] = [dict(h) for h in headers]
    return extra


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` documenting each status as an ``application/problem+json`` body."""
    return {
        status: {
            "description": reasons.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
        }
        for status in statuses
    }


def bearer_security(
    openapi: dict[str, Any], *, name: str, description: str, paths: Iterable[str]
) -> dict[str, Any]:
    """Add a bearer security scheme *name* to an OpenAPI document and require it on *paths*
    (every operation under them). Returns the document."""
    components = openapi.setdefault("components", {})
    components.setdefault("securitySchemes", {})[name] = {
        "type": "http",
        "scheme": "bearer",
        "description": description,
    }
    wanted = tuple(paths)
    for path, operations in openapi.get("paths", {}).items():
        if path.startswith(wanted):
            for operation in operations.values():
                if isinstance(operation, dict):
                    operation["security"] = [{name: []}]
    return openapi


def require_bearer_in_openapi(
    app: FastAPI, *, name: str, description: str, paths: Iterable[str]
) -> None:
    """Make *app*'s ``/openapi.json`` declare the bearer scheme *name* on every operation
    under *paths* (see :func:`bearer_security`), built once on first request."""
    from fastapi.openapi.utils import get_openapi

    wanted = tuple(paths)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            app.openapi_schema = bearer_security(
                document, name=name, description=description, paths=wanted
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
