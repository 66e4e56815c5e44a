"""Property-based fuzzing of the orders HTTP API from its own OpenAPI schema.

Schemathesis generates requests from ``/openapi.json`` against a real ``stockflow serve
orders`` process (SQLite + SqliteLogBus in a temp dir) with every check on: no 5xx, every
response as documented, and schema-valid requests accepted. The credential and a customer
identity are sent on every request (as edge does), so the bodies and the paths are reached.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stockflow_kit.lifecycle import ServiceProcess

pytestmark = pytest.mark.slow

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
TOKEN = "fuzz-service-token"


async def test_the_orders_api_does_what_its_openapi_document_says(tmp_path: Path) -> None:
    process = ServiceProcess(
        [STOCKFLOW, "serve", "orders"],
        name="orders",
        env={
            **os.environ,
            "ORDERS_DATABASE_URL": f"sqlite:///{tmp_path}/orders.sqlite3",
            "BUS_URL": f"sqlite:///{tmp_path}/bus.sqlite3",
            "ORDERS_SERVICE_TOKEN": TOKEN,
            "STOCKFLOW_LOG_FORMAT": "json",
        },
        port_env="ORDERS_PORT",
        log=tmp_path / "orders.log",
    )
    process.start()
    try:
        await process.wait_ready(within=60)
        result = subprocess.run(  # noqa: ASYNC221 - a bounded CLI run; the server is another process
            [
                SCHEMATHESIS,
                "run",
                f"{process.base_url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "40",
                "--seed",
                "7",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--header",
                "X-Stockflow-User: fuzzer",
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
            line for line in process.log.read_text().splitlines() if '"status": 5' in line
        ]
        assert server_errors == [], server_errors[:5]
    finally:
        process.terminate()
