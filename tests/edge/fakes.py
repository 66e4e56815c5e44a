"""In-memory fakes of profiles and notifications that follow their published contracts
(``stockflow.contracts.profiles`` / ``.notifications``): the service credential and the
identity headers on every route, owner-or-staff reads, 404 for another user's data.

They stand in for the services being built elsewhere; each remembers the headers of the last
request it got (what edge forwarded) and can be switched off (:class:`Switch`), which makes
every call to it fail as a refused connection does.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
import msgspec
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from stockflow.contracts.identity import ROLE_HEADER, USER_HEADER
from stockflow.contracts.notifications import (
    NotificationsPage,
    NotificationView,
    WebhookCreated,
    WebhookRequest,
    WebhookView,
)
from stockflow.contracts.profiles import ProfileUpdate, ProfileView
from stockflow_kit.http import instrument, problem_response


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _json(value: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


@dataclass
class Seen:
    """The headers of the last request a fake got."""

    headers: dict[str, str] = field(default_factory=dict)


def _check(request: Request, token: str, seen: Seen) -> Response | tuple[str | None, str]:
    seen.headers = dict(request.headers)
    if request.headers.get("authorization") != f"Bearer {token}":
        return problem_response(401, detail="this endpoint needs a valid service credential")
    return request.headers.get(USER_HEADER), request.headers.get(ROLE_HEADER, "customer")


def _app(name: str) -> FastAPI:
    """A FastAPI app with the kit's HTTP layer, as every real service has (correlation ids,
    problem bodies)."""
    app = FastAPI()
    instrument(app, service=name, registry=CollectorRegistry())
    return app


def profiles_app(token: str) -> tuple[FastAPI, Seen]:
    app = _app("profiles-fake")
    seen = Seen()
    profiles: dict[str, ProfileView] = {}

    @app.get("/profiles/{user_id}")
    async def get(user_id: str, request: Request) -> Response:
        caller = _check(request, token, seen)
        if isinstance(caller, Response):
            return caller
        user, role = caller
        profile = profiles.get(user_id)
        if profile is None or (user != user_id and role != "staff"):
            return problem_response(404, detail=f"no profile {user_id!r}")
        return _json(profile)

    @app.put("/profiles/{user_id}")
    async def put(user_id: str, request: Request) -> Response:
        caller = _check(request, token, seen)
        if isinstance(caller, Response):
            return caller
        if caller[0] != user_id:
            return problem_response(404, detail=f"no profile {user_id!r}")
        try:
            update = msgspec.json.decode(await request.body(), type=ProfileUpdate)
        except msgspec.MsgspecError as error:
            return problem_response(422, detail=str(error))
        old = profiles.get(user_id)
        match = request.headers.get("if-match")
        if match is not None and (old is None or match.strip('"') != str(old.version)):
            return problem_response(412, detail="the profile changed")
        profiles[user_id] = ProfileView(
            user_id=user_id,
            name=update.name,
            email=update.email,
            addresses=update.addresses,
            preferences=update.preferences,
            version=(old.version if old else 0) + 1,
            updated_at=_now(),
        )
        return _json(profiles[user_id])

    return app, seen


def notifications_app(token: str) -> tuple[FastAPI, Seen]:
    app = _app("notifications-fake")
    seen = Seen()
    ids = itertools.count(1)
    webhooks: dict[str, WebhookView] = {}
    inbox: dict[str, list[NotificationView]] = {
        "alice": [
            NotificationView(
                id="n-1", user_id="alice", type="OrderConfirmed", message="hi", created_at=_now()
            )
        ]
    }

    @app.get("/notifications")
    async def notifications(request: Request) -> Response:
        caller = _check(request, token, seen)
        if isinstance(caller, Response):
            return caller
        return _json(NotificationsPage(notifications=inbox.get(caller[0] or "", []), next=None))

    @app.post("/webhooks")
    async def subscribe(request: Request) -> Response:
        caller = _check(request, token, seen)
        if isinstance(caller, Response):
            return caller
        if caller[1] != "staff":
            return problem_response(403, detail="staff only")
        try:
            wanted = msgspec.json.decode(await request.body(), type=WebhookRequest)
        except msgspec.MsgspecError as error:
            return problem_response(422, detail=str(error))
        view = WebhookView(
            id=f"wh-{next(ids)}", url=wanted.url, events=list(wanted.events), created_at=_now()
        )
        webhooks[view.id] = view
        created = WebhookCreated(**msgspec.structs.asdict(view), secret="whsec_ZmFrZQ==")
        return _json(created, 201)

    @app.get("/webhooks")
    async def listed(request: Request) -> Response:
        caller = _check(request, token, seen)
        if isinstance(caller, Response):
            return caller
        return _json({"webhooks": list(webhooks.values())})

    @app.delete("/webhooks/{webhook_id}")
    async def delete(webhook_id: str, request: Request) -> Response:
        caller = _check(request, token, seen)
        if isinstance(caller, Response):
            return caller
        if webhooks.pop(webhook_id, None) is None:
            return problem_response(404, detail=f"no webhook {webhook_id!r}")
        return Response(status_code=204)

    @app.get("/webhooks/{webhook_id}/deliveries")
    async def deliveries(webhook_id: str, request: Request) -> Response:
        caller = _check(request, token, seen)
        if isinstance(caller, Response):
            return caller
        if webhook_id not in webhooks:
            return problem_response(404, detail=f"no webhook {webhook_id!r}")
        return _json({"deliveries": [], "next": None})

    return app, seen


class Switch(httpx.AsyncBaseTransport):
    """An ASGI transport to an in-process app that can be switched off: while off, every
    request fails like a connection to a stopped process (``httpx.ConnectError``); while
    ``hung``, none is ever answered."""

    def __init__(self, app: object) -> None:
        self._inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.on = True
        self.hung = False
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.hung:  # accepted, never answered: only the caller's timeout ends it
            await asyncio.Event().wait()
        if not self.on:
            raise httpx.ConnectError("connection refused (the fake is stopped)", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def transports(apps: Mapping[str, object]) -> dict[str, Switch]:
    return {name: Switch(app) for name, app in apps.items()}
