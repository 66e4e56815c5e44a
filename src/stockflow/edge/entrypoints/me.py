"""``GET /me`` and ``PUT /me``: the caller's own profile, from profiles, with a fallback.

Every profile profiles answers (to a GET or a PUT) is kept in a bounded LRU cache with a TTL
(:class:`~stockflow.edge.domain.profile_cache.ProfileCache`). When profiles cannot answer
(not reachable, its breaker open, a timeout, a 5xx), ``GET /me`` serves that last known copy
with ``"degraded": true`` (and counts it in ``edge_degraded_responses_total``); with none
known, a 503 problem with ``Retry-After``. A fresh answer carries ``"degraded": false``.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import structlog
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter
from starlette.responses import Response

from stockflow.contracts.profiles import ProfileUpdate, ProfileView
from stockflow.edge.domain.profile_cache import ProfileCache
from stockflow.edge.entrypoints.forwarding import Caller, Forwarder, segment
from stockflow.edge.entrypoints.openapi_docs import answers
from stockflow_kit.http import DownstreamClientError, DownstreamError
from stockflow_kit.http.bodies import decode_json
from stockflow_kit.http.openapi import json_body, json_schema

__all__ = ["add_me_routes"]

_log = structlog.get_logger("stockflow.edge")
_ROUTE: Final = "/profiles/{user_id}"


def _me_schema() -> dict[str, Any]:
    schema = json_schema(ProfileView)
    schema["properties"]["degraded"] = {
        "type": "boolean",
        "description": "true: profiles is unavailable and this is the last known copy.",
    }
    schema["required"] = [*schema.get("required", []), "degraded"]
    return schema


def _with_degraded(body: bytes, degraded: bool) -> Response:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:  # not JSON: passed on as it came
        return Response(body, media_type="application/json")
    if isinstance(value, dict):
        value["degraded"] = degraded
    return Response(msgspec.json.encode(value), media_type="application/json")


def add_me_routes(
    app: FastAPI,
    forwarder: Forwarder,
    cache: ProfileCache,
    *,
    registry: CollectorRegistry,
    deadline: float,
) -> None:
    """``/me`` on *app*; ``GET`` waits at most *deadline* seconds for profiles."""
    degraded_total = Counter(
        "edge_degraded_responses",
        "Answers served from the last known copy because a downstream could not answer.",
        ["route"],
        registry=registry,
    )
    me = {"description": "OK", "content": {"application/json": {"schema": _me_schema()}}}

    @app.get("/me", tags=["profiles"], responses=answers({200: me}, 404))
    async def get_me(principal: Caller, request: Request) -> Response:
        try:
            response = await forwarder.call(
                "profiles",
                "GET",
                f"/profiles/{segment(principal.user_id)}",
                principal=principal,
                request=request,
                route=_ROUTE,
                deadline=deadline,
            )
        except DownstreamClientError as error:
            if error.status == 404:
                cache.forget(principal.user_id)
            raise
        except DownstreamError as error:
            cached = cache.get(principal.user_id)
            if cached is None:
                raise
            degraded_total.labels("/me").inc()
            _log.warning(
                "edge.degraded_profile",
                user=principal.user_id,
                downstream=error.downstream,
                error=type(error).__name__,
                age_seconds=round(cache.age(cached), 1),
            )
            return _with_degraded(cached.body, True)
        cache.put(principal.user_id, response.content)
        return _with_degraded(response.content, False)

    @app.put(
        "/me",
        tags=["profiles"],
        openapi_extra=json_body(
            ProfileUpdate,
            headers=[
                {
                    "name": "If-Match",
                    "in": "header",
                    "required": False,
                    "description": 'The version you read, quoted ("3"): 412 if it changed.',
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "pattern": "^[ -~]*[!-~][ -~]*$",
                    },
                }
            ],
        ),
        responses=answers({200: me}, 400, 404, 409, 412, 413, 415, 422),
    )
    async def put_me(principal: Caller, request: Request) -> Response:
        body = await request.body()
        decode_json(request, body, ProfileUpdate)
        response = await forwarder.call(
            "profiles",
            "PUT",
            f"/profiles/{segment(principal.user_id)}",
            principal=principal,
            request=request,
            route=_ROUTE,
            content=body,
        )
        cache.put(principal.user_id, response.content)
        return _with_degraded(response.content, False)
