"""The edge-like composer of ``stockflow bench claims`` (claim 1): ``GET /me`` and ``PUT /me``
for a caller with a customer's JWT (verified with the run's HS256 key, as edge does), the
identity passed on in the identity headers, one :class:`~stockflow_kit.http.ResilientClient`
per downstream set as edge sets its own.

Either from the four fragments of :data:`~stockflow.bench.claims_apps.FRAGMENTS` (four calls
at once, the profile split by field and merged back) or from the real profiles service (one
call): the same code both ways, only the fan-out differs. Served by
``python -m stockflow.bench.claims_apps composer``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import jwt
import msgspec
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from stockflow.bench.claims_apps import (
    FRAGMENTS,
    JSON_TYPE,
    downstream_problem,
    fixture_client,
    problem,
)
from stockflow.contracts.identity import ROLE_HEADER, USER_HEADER
from stockflow.contracts.profiles import ProfileUpdate
from stockflow_kit.http import DownstreamError, ResilientClient

__all__ = ["composer_app"]

_FIELDS: Final = {
    "identity": ("name",),
    "contact": ("email",),
    "addresses": ("addresses",),
    "preferences": ("preferences",),
}


def _caller(request: Request, secret: str) -> tuple[str, str] | None:
    """``(user, role)`` of the request's bearer JWT, or ``None`` when it is not valid."""
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        return None
    try:
        claims = jwt.decode(header[7:], secret, algorithms=["HS256"], leeway=30)
    except jwt.InvalidTokenError:
        return None
    return str(claims["sub"]), str(claims["role"])


def _merge(user: str, parts: list[dict[str, Any]], versions: list[int]) -> bytes:
    view: dict[str, Any] = {"user_id": user}
    for part in parts:
        view.update(part)
    view["version"] = sum(versions)
    view["degraded"] = False
    return msgspec.json.encode(view)


def composer_app(downstreams: Mapping[str, str], *, secret: str, token: str) -> FastAPI:
    """``GET /me`` / ``PUT /me`` composed from *downstreams* (name -> base URL): the four
    fragments (``/fragments/{user}`` each) or ``profiles`` alone (``/profiles/{user}``)."""
    clients: dict[str, ResilientClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for name, url in downstreams.items():
            clients[name] = fixture_client(name, url, token, registry)
        try:
            yield
        finally:
            for client in clients.values():
                await client.aclose()

    registry = CollectorRegistry()
    app = FastAPI(title="bench composer", lifespan=lifespan)
    consolidated = "profiles" in downstreams

    def path(name: str, user: str) -> str:
        return f"/profiles/{user}" if consolidated else f"/fragments/{user}"

    async def call(
        method: str, user: str, role: str, content: bytes | None = None
    ) -> list[tuple[str, bytes, int]]:
        headers = {USER_HEADER: user, ROLE_HEADER: role}
        if content is not None:
            headers["Content-Type"] = JSON_TYPE

        async def one(name: str, body: bytes | None) -> tuple[str, bytes, int]:
            response = await clients[name].request(
                method, path(name, user), headers=headers, content=body
            )
            return name, response.content, int(response.headers.get("etag", '"0"').strip('"'))

        if consolidated:
            return [await one("profiles", content)]
        if content is None:
            return list(await asyncio.gather(*(one(name, None) for name in FRAGMENTS)))
        update = msgspec.json.decode(content)
        return list(
            await asyncio.gather(
                *(
                    one(name, msgspec.json.encode({f: update.get(f) for f in _FIELDS[name]}))
                    for name in FRAGMENTS
                )
            )
        )

    def answer(user: str, results: list[tuple[str, bytes, int]]) -> Response:
        if consolidated:
            view = msgspec.json.decode(results[0][1])
            view["degraded"] = False
            return Response(msgspec.json.encode(view), media_type=JSON_TYPE)
        parts = [msgspec.json.decode(body) for _name, body, _version in results]
        body = _merge(user, parts, [version for _n, _b, version in results])
        return Response(body, media_type=JSON_TYPE)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/me")
    async def get_me(request: Request) -> Response:
        caller = _caller(request, secret)
        if caller is None:
            return problem(401, "a valid bearer token is required")
        try:
            return answer(caller[0], await call("GET", *caller))
        except DownstreamError as error:
            return downstream_problem(error)

    @app.put("/me")
    async def put_me(request: Request) -> Response:
        caller = _caller(request, secret)
        if caller is None:
            return problem(401, "a valid bearer token is required")
        body = await request.body()
        try:
            msgspec.json.decode(body, type=ProfileUpdate)
        except msgspec.ValidationError as error:
            return problem(422, str(error))
        try:
            return answer(caller[0], await call("PUT", *caller, content=body))
        except DownstreamError as error:
            return downstream_problem(error)

    return app
