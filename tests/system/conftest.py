"""``system``: the whole system started once per module, embedded and distributed.

Sync fixtures (each runs its own event loop with ``asyncio.run``), so the async tests can share
one running system; every test ends with the audit (``audited``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.system.system import System, embedded, running, running_distributed


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("embedded", marks=pytest.mark.slow),
        pytest.param("distributed", marks=[pytest.mark.integration, pytest.mark.slow]),
    ],
)
def system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "embedded":
        yield from running(embedded(root))
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    nats_url: str = request.getfixturevalue("nats_url")
    yield from running_distributed(root, postgres_url, nats_url)


@pytest.fixture
def audited(system: System) -> Iterator[System]:
    """The system; after the test, no 5xx in its log and a clean audit."""
    yield system
    assert system.server_errors() == [], system.server_errors()[:5]
    system.audit()
