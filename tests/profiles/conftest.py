"""Fixtures for the profiles tests: the service built through its bootstrap on ``memory://``
(a throwaway SQLite file) and an in-memory bus, with an ASGI client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from stockflow.profiles.bootstrap import ProfilesService, build
from stockflow.profiles.settings import ProfilesSettings
from stockflow_kit.messaging import InMemoryBus

SERVICE_TOKEN = "test-service-credential"
AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
STAFF = {**AUTH, "X-Stockflow-Role": "staff"}


def customer(user: str) -> dict[str, str]:
    return {**AUTH, "X-Stockflow-User": user}


def profiles_settings(**overrides: object) -> ProfilesSettings:
    values: dict[str, object] = {
        "database_url": "memory://",
        "bus_url": "memory://",
        "service_token": SERVICE_TOKEN,
    }
    values.update(overrides)
    return ProfilesSettings(**values)  # type: ignore[arg-type]


def body(name: str = "Alice Example", email: str = "alice@example.com", **more: Any) -> Any:
    return {"name": name, "email": email, **more}


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@dataclass
class System:
    """The profiles service on an in-memory bus, with an HTTP client."""

    bus: InMemoryBus
    service: ProfilesService
    http: httpx.AsyncClient

    async def put(self, user: str, payload: Any | None = None, **headers: str) -> httpx.Response:
        return await self.http.put(
            f"/profiles/{user}", json=payload or body(), headers={**customer(user), **headers}
        )


@pytest.fixture
async def system(bus: InMemoryBus) -> AsyncIterator[System]:
    service = build(profiles_settings(), bus=bus)
    await service.start()
    async with client(service.app) as http:
        yield System(bus, service, http)
    await service.stop()
