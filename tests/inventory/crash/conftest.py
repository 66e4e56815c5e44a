"""Fixtures of the crash tests: private PostgreSQL and NATS servers they may restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.inventory.crash.private_servers import PrivateNats, PrivatePostgres


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
