"""The Redis on this machine (``STOCKFLOW_TEST_REDIS``, default 127.0.0.1:6379): skipped when
unreachable, failed instead under ``STOCKFLOW_REQUIRE_SERVICES=1`` (as the PostgreSQL and NATS
fixtures of the root conftest do)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

REDIS_URL = os.environ.get("STOCKFLOW_TEST_REDIS", "redis://127.0.0.1:6379")
_HOW_TO_START = "redis-server --bind 127.0.0.1 --port 6379 --save '' --daemonize yes"


@pytest.fixture(scope="session")
def redis_url() -> str:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            pass
    except OSError:
        message = f"Redis is not reachable at {REDIS_URL}; start it with: {_HOW_TO_START}"
        if os.environ.get("STOCKFLOW_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return REDIS_URL
