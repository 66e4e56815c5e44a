"""Per-client rate limits at edge: 429 problem with Retry-After, per token subject or address."""

from __future__ import annotations

import pytest
from tests.edge.conftest import Edge, bearer


@pytest.fixture
def edge_overrides() -> dict[str, object]:
    return {"rate_limit": "3/minute"}


async def test_a_client_over_its_limit_gets_a_429_with_retry_after(edge: Edge) -> None:
    alice = bearer("alice")
    for _ in range(3):
        assert (await edge.http.get("/notifications", headers=alice)).status_code == 200
    refused = await edge.http.get("/notifications", headers=alice)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["correlation_id"] == refused.headers["x-correlation-id"]
    # Another user has a quota of their own.
    assert (await edge.http.get("/notifications", headers=bearer("bob"))).status_code == 200


async def test_requests_without_a_valid_token_are_limited_by_address(edge: Edge) -> None:
    for _ in range(3):
        assert (await edge.http.get("/me")).status_code == 401
    assert (await edge.http.get("/me", headers={"Authorization": "Bearer x"})).status_code == 429
    # A user with a token still passes: their own quota, not the address's.
    assert (await edge.http.get("/notifications", headers=bearer("alice"))).status_code == 200


async def test_the_probes_and_the_metrics_are_never_limited(edge: Edge) -> None:
    for _ in range(10):
        assert (await edge.http.get("/healthz")).status_code == 200
        assert (await edge.http.get("/metrics")).status_code == 200
