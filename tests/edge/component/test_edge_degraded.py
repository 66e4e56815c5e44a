"""When profiles is down: the last known profile, marked degraded; never a 5xx but a 503."""

from __future__ import annotations

import time

import pytest
from tests.edge.conftest import Edge, bearer


@pytest.fixture
def edge_overrides() -> dict[str, object]:
    return {"profile_deadline_seconds": 0.5, "downstream_timeout_seconds": 0.2}


async def test_me_serves_the_last_known_profile_marked_degraded_when_profiles_is_stopped(
    edge: Edge,
) -> None:
    alice = bearer("alice")
    put = await edge.http.put(
        "/me", json={"name": "Alice", "email": "alice@example.com"}, headers=alice
    )
    assert put.status_code == 200, put.text
    fresh = await edge.http.get("/me", headers=alice)
    assert fresh.json()["degraded"] is False

    edge.switches["profiles"].on = False
    for _ in range(5):  # refused connections, then the open breaker: the copy each time
        degraded = await edge.http.get("/me", headers=alice)
        assert degraded.status_code == 200, degraded.text
        body = degraded.json()
        assert body["degraded"] is True
        assert (body["name"], body["version"]) == ("Alice", fresh.json()["version"])
    assert edge.service.downstreams["profiles"].breaker.state.name.lower() == "open"
    metrics = (await edge.http.get("/metrics")).text
    assert 'edge_degraded_responses_total{route="/me"} 5.0' in metrics


async def test_me_is_a_503_problem_when_profiles_is_down_and_no_copy_is_known(
    edge: Edge,
) -> None:
    edge.switches["profiles"].on = False
    response = await edge.http.get("/me", headers=bearer("bob"))
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    writes = await edge.http.put(
        "/me", json={"name": "Bob", "email": "bob@example.com"}, headers=bearer("bob")
    )
    assert writes.status_code == 503  # a write has no fallback


async def test_the_copy_of_one_user_is_never_served_to_another(edge: Edge) -> None:
    await edge.http.put(
        "/me", json={"name": "Alice", "email": "alice@example.com"}, headers=bearer("alice")
    )
    edge.switches["profiles"].on = False
    assert (await edge.http.get("/me", headers=bearer("bob"))).status_code == 503


async def test_a_hung_profiles_costs_me_its_deadline_then_the_copy(edge: Edge) -> None:
    alice = bearer("alice")
    await edge.http.put("/me", json={"name": "Alice", "email": "alice@example.com"}, headers=alice)
    edge.switches["profiles"].hung = True
    started = time.monotonic()
    degraded = await edge.http.get("/me", headers=alice)
    assert time.monotonic() - started < 2.0
    assert degraded.status_code == 200, degraded.text
    assert degraded.json()["degraded"] is True
