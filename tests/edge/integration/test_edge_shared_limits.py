"""Two edge replicas on one Redis count one limit per client (the real Redis server)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from tests.edge.conftest import client, edge_settings, token
from tests.edge.fakes import Switch, notifications_app

from stockflow.edge.bootstrap import build as build_edge

pytestmark = pytest.mark.integration


async def test_two_edge_replicas_sharing_redis_see_one_limit(redis_url: str) -> None:
    notifications, _seen = notifications_app("test-service-credential")
    replicas = [
        build_edge(
            edge_settings(rate_limit="4/minute", rate_limit_storage_url=redis_url),
            transports={"notifications": Switch(notifications)},
        )
        for _ in range(2)
    ]
    user = f"redis-{uuid.uuid4().hex[:12]}"  # a quota no earlier run touched
    headers = {"Authorization": f"Bearer {token(user)}"}
    for replica in replicas:
        await replica.start()
    try:
        async with client(replicas[0].app) as first, client(replicas[1].app) as second:
            statuses = []
            for n in range(6):
                http: httpx.AsyncClient = (first, second)[n % 2]
                statuses.append((await http.get("/notifications", headers=headers)).status_code)
            assert statuses == [200, 200, 200, 200, 429, 429]
            refused = await second.get("/notifications", headers=headers)
            assert int(refused.headers["retry-after"]) >= 1
    finally:
        for replica in replicas:
            await replica.stop()
