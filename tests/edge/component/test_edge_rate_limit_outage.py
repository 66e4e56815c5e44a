"""When the rate limit storage (Redis) is unreachable, edge fails open: requests pass,
counted in a metric."""

from __future__ import annotations

import pytest
from tests.edge.conftest import Edge, bearer

from stockflow_kit.lifecycle import free_port


@pytest.fixture
def edge_overrides() -> dict[str, object]:
    return {
        "rate_limit": "1/minute",
        "rate_limit_storage_url": f"redis://127.0.0.1:{free_port()}",  # nobody listens
    }


async def test_requests_pass_unlimited_while_the_storage_is_down(edge: Edge) -> None:
    for _ in range(3):  # over the 1/minute limit, yet served
        response = await edge.http.get("/notifications", headers=bearer("alice"))
        assert response.status_code == 200, response.text
    metrics = (await edge.http.get("/metrics")).text
    assert "edge_rate_limit_storage_failures_total 3.0" in metrics
