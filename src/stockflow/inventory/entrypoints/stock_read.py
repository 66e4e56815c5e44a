"""``GET /inventory/{sku}`` without FastAPI's request machinery on its ordinary path.

The stock read is the inventory's hottest route. FastAPI spends more on it than the read
itself: the credential dependency solved per request, the path parameter validated by
pydantic, a ``Request`` and a ``Response`` built (about half of the route's server CPU in
``stockflow bench http``). :class:`StockReadRoute` sits in front of the FastAPI route: a
``GET`` with the service credential, a well-formed SKU this process owns and has a row for is
answered from the committed states directly (the same bytes and headers); *anything else*
(no or a wrong credential, a malformed or unknown SKU, a SKU another replica owns) is handed
to the FastAPI route, which answers it exactly as before. Other methods never match it. The
middleware around the router (correlation id, metrics, access log, problems) is the same for
both. The OpenAPI document is the FastAPI route's.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec
from fastapi.routing import APIRoute
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from stockflow.contracts.inventory import MAX_SKU_LENGTH, SKU_PATTERN
from stockflow.inventory.entrypoints.http_io import view
from stockflow.inventory.service_layer.reads import CommittedReads
from stockflow_kit.http.credentials import accepts_credential

__all__ = ["StockReadRoute"]

_SKU: Final = re.compile(SKU_PATTERN.removeprefix("^").removesuffix("$"))
_AUTHORIZATION: Final = b"authorization"
_JSON: Final = b"application/json"


class StockReadRoute(Route):
    """The fast path of *fallback* (``GET /inventory/{sku}``), for a caller with *token*.

    Args:
        fallback: The FastAPI route of the same path; it answers every request this one
            does not.
        reads: The committed reads the FastAPI route reads too (read-your-writes).
        token: The service credential; ``None`` (none configured): always the fallback.
    """

    def __init__(self, fallback: APIRoute, *, reads: CommittedReads, token: str | None) -> None:
        super().__init__(fallback.path, fallback.app, methods=["GET"], include_in_schema=False)
        self.fallback = fallback
        self.reads = reads
        self._expected = None if token is None else token.encode()

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "GET":
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        if match is Match.FULL:
            child_scope["route"] = self  # the route template of the metrics and the access log
        return match, child_scope

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        sku: str = scope["path_params"]["sku"]
        row = (
            self.reads.owned_row(sku)
            if len(sku) <= MAX_SKU_LENGTH
            and _SKU.fullmatch(sku) is not None
            and accepts_credential(_authorization(scope), self._expected)
            else None
        )
        if row is None:
            _, child_scope = self.fallback.matches(scope)
            scope.update(child_scope)
            await self.fallback.handle(scope, receive, send)
            return
        body = msgspec.json.encode(view(row))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", _JSON),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _authorization(scope: Scope) -> str | None:
    # The first Authorization header, as Starlette's Headers.get gives it.
    for name, value in scope["headers"]:
        if name == _AUTHORIZATION:
            return str(value.decode("latin-1"))
    return None
