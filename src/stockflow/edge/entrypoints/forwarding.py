"""Calls made for a request: who is calling (the gate), and the call to a downstream."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Final
from urllib.parse import quote

import httpx
from fastapi import Depends
from starlette.requests import Request
from starlette.responses import Response

from stockflow.edge.domain.identity import Principal
from stockflow.edge.entrypoints.http_errors import InvalidHeaderError, passthrough
from stockflow.edge.service_layer.gate import Gate
from stockflow.edge.service_layer.ports import Downstreams
from stockflow_kit.http import IDEMPOTENCY_KEY_HEADER
from stockflow_kit.http.credentials import bearer_token

__all__ = [
    "Caller",
    "Forwarder",
    "InvalidHeaderError",
    "current_principal",
    "passed_on",
    "segment",
]

Params = Mapping[str, str | int | None]
_PASSED_ON: Final = (IDEMPOTENCY_KEY_HEADER, "If-Match", "Content-Type")
_PRINTABLE: Final = re.compile(r"[ -~]*[!-~][ -~]*")
"""What a client sent that the downstream gets too (nothing else: never identity headers)."""


def segment(value: str) -> str:
    """A path parameter as one URL path segment (already checked; quoted all the same)."""
    return quote(value, safe="")


def passed_on(request: Request, *, with_body: bool) -> dict[str, str]:
    """The headers of *request* the downstream gets (``Content-Type`` only with a body).

    Raises:
        InvalidHeaderError: one of them is not printable ASCII (1 to 200 characters).
    """
    headers = {}
    for name in _PASSED_ON:
        value = request.headers.get(name)
        if value is None or (name == "Content-Type" and not with_body):
            continue
        if len(value) > 200 or not _PRINTABLE.fullmatch(value):
            raise InvalidHeaderError(f"{name} must be 1 to 200 printable ASCII characters")
        headers[name] = value
    return headers


async def current_principal(request: Request) -> Principal:
    """The FastAPI dependency of every public route: the request's verified, rate-limited
    caller, through the app's gate (``app.state.gate``)."""
    gate: Gate = request.app.state.gate
    token = bearer_token(request.headers.get("authorization"))
    address = request.client.host if request.client is not None else "unknown"
    return await gate.admit(token, address=address)


Caller = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True)
class Forwarder:
    """Calls the downstreams on behalf of a verified caller."""

    downstreams: Downstreams

    async def call(
        self,
        downstream: str,
        method: str,
        path: str,
        *,
        principal: Principal,
        request: Request,
        route: str,
        params: Params | None = None,
        content: bytes | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """The downstream's 2xx answer (within *deadline* seconds when given).

        Raises:
            DownstreamError: any other outcome (the app's handlers answer it).
        """
        headers = passed_on(request, with_body=content is not None)
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return await self.downstreams.request(
            downstream,
            method,
            path,
            principal=principal,
            headers=headers,
            route=route,
            params=query,
            content=content,
            deadline=deadline,
        )

    async def forward(
        self,
        downstream: str,
        method: str,
        path: str,
        *,
        principal: Principal,
        request: Request,
        route: str,
        params: Params | None = None,
        content: bytes | None = None,
    ) -> Response:
        """:meth:`call`, answered as the downstream answered."""
        response = await self.call(
            downstream,
            method,
            path,
            principal=principal,
            request=request,
            route=route,
            params=params,
            content=content,
        )
        return passthrough(response)
