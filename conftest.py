"""Fixtures shared by the kit's and the application's test suites.

Real servers: ``postgres_url`` (a fresh database per test session on the PostgreSQL at
``STOCKFLOW_TEST_POSTGRES``, default 127.0.0.1:5432) and ``nats_url`` (the NATS JetStream at
``STOCKFLOW_TEST_NATS``, default 127.0.0.1:4222). When a server cannot be reached the test is
skipped, unless ``STOCKFLOW_REQUIRE_SERVICES=1`` (set by ``.ci/run`` and ``make
test-integration``), in which case it fails with a message that says how to start it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import stamina
import structlog

POSTGRES_ADMIN_URL = os.environ.get(
    "STOCKFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS_URL = os.environ.get("STOCKFLOW_TEST_NATS", "nats://127.0.0.1:4222")

# `stockflow serve` refuses to start without a service credential; the services the tests
# start as subprocesses inherit this one (tests that check the refusal unset it).
os.environ.setdefault("STOCKFLOW_SERVICE_TOKEN", "test-service-credential")

_HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "NATS JetStream": (
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- "
        "-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log"
    ),
}


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def require_server(name: str, url: str, default_port: int) -> None:
    """Skip (locally) or fail (CI) when the server behind *url* is unreachable."""
    if _reachable(url, default_port):
        return
    message = f"{name} is not reachable at {url}; start it with: {_HOW_TO_START[name]}"
    if os.environ.get("STOCKFLOW_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session; dropped afterwards."""
    require_server("PostgreSQL", POSTGRES_ADMIN_URL, 5432)
    import asyncpg

    name = f"stockflow_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = urlsplit(POSTGRES_ADMIN_URL)
    try:
        yield base._replace(path=f"/{name}").geturl()
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The URL of the real NATS JetStream server (tests use unique stream names)."""
    require_server("NATS JetStream", NATS_URL, 4222)
    return NATS_URL


@pytest.fixture(autouse=True)
def _reset_global_state() -> Iterator[None]:
    """Retries never sleep in tests, and every test starts with structlog's defaults."""
    stamina.set_testing(True, attempts=3)
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
    stamina.set_testing(False)
