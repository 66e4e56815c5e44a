"""Property-based fuzzing of the inventory HTTP API from its own OpenAPI schema.

Schemathesis generates requests from ``/openapi.json`` (valid, invalid and edge-case bodies,
paths, headers) against a real ``stockflow serve inventory`` process (SQLite + SqliteLogBus in
a temp dir) and fails on any 5xx (malformed input must always be a 4xx problem, never a server
error), on any response that does not match its documented schema, and on any schema-valid
request the service rejects. The internal endpoints are fuzzed with a valid service credential so their bodies are
reached too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.inventory.crash.worker_process import Worker

pytestmark = pytest.mark.slow

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
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
        result = subprocess.run(  # noqa: ASYNC221 - a bounded CLI run; the server is another process
            [
                SCHEMATHESIS,
                "run",
                f"http://127.0.0.1:{worker.port}/openapi.json",
                # Every check: no 5xx, responses match their documented schemas (problems
                # included), schema-valid requests are accepted: the OpenAPI document is the
                # contract (hardening issue, item 9).
                "--checks",
                "all",
                "--max-examples",
                "40",
                "--seed",
                "7",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        (tmp_path / "schemathesis.out").write_text(result.stdout)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        assert "passed" in result.stdout.lower()
        server_errors = [
            line for line in worker.log.read_text().splitlines() if '"status": 5' in line
        ]
        assert server_errors == [], server_errors[:5]
    finally:
        worker.terminate()
