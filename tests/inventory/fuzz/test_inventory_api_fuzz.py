"""Property-based fuzzing of the inventory HTTP API from its own OpenAPI schema.

Schemathesis generates requests from ``/openapi.json`` (valid, invalid and edge-case bodies,
paths, headers) against a real ``stockflow serve inventory`` process (SQLite + SqliteLogBus in
a temp dir) and fails on any 5xx (malformed input must always be a 4xx problem, never a server
error), on any response that does not match its documented schema, and on any schema-valid
request the service rejects. The internal endpoints are fuzzed with a valid service credential so their bodies are
reached too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fuzzing import assert_openapi_holds
from tests.inventory.crash.worker_process import Worker

pytestmark = pytest.mark.slow

TOKEN = "fuzz-service-token"


async def test_the_inventory_api_does_what_its_openapi_document_says(tmp_path: Path) -> None:
    worker = Worker(
        {
            "INVENTORY_EVENT_STORE_URL": f"sqlite:///{tmp_path}/inventory.sqlite3",
            "BUS_URL": f"sqlite:///{tmp_path}/bus.sqlite3",
            "INVENTORY_SERVICE_TOKEN": TOKEN,
        },
        tmp_path / "worker.log",
    )
    worker.start()
    try:
        await worker.wait_ready()
        assert_openapi_holds(
            f"http://127.0.0.1:{worker.port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            log=worker.log,
            workdir=tmp_path,
        )
    finally:
        worker.terminate()
