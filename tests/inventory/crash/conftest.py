"""Fixtures of the crash tests: private PostgreSQL and NATS servers they may restart, and a
check that no process a test started outlives it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.inventory.crash import survivors
from tests.inventory.crash.private_servers import PrivateNats, PrivatePostgres

SURVIVAL_GRACE = 10.0
"""Seconds a test's processes get to exit after it ends (the feeder exits on EOF, the
postmaster after its backends)."""


@pytest.fixture(autouse=True)
def no_process_outlives_the_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Mark every process the test starts (through the environment they inherit); after the
    test and its other fixtures, fail if a marked process is still alive (and kill it)."""
    mark = uuid.uuid4().hex
    monkeypatch.setenv(survivors.MARK, mark)
    yield
    found = survivors.survivors(mark, grace=SURVIVAL_GRACE)
    if found:
        survivors.kill(found)
        pytest.fail(survivors.report(found, SURVIVAL_GRACE), pytrace=False)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private PostgreSQL cluster; stopped and removed afterwards, whatever happened."""
    server = PrivatePostgres.create()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def private_nats() -> Iterator[PrivateNats]:
    """A started private nats-server with JetStream; stopped and removed afterwards."""
    server = PrivateNats.create()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
