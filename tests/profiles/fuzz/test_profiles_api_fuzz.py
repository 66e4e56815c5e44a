"""Property-based fuzzing of the profiles HTTP API from its own OpenAPI schema.

Schemathesis generates requests from ``/openapi.json`` against a real ``stockflow serve
profiles`` process (SQLite + SqliteLogBus in a temp dir) with every check on: no 5xx, every
response as documented, and schema-valid requests accepted. The credential and a customer
identity are sent on every request (as edge does), and the path's user id is that customer's,
so the owner's writes reach the body decoder (who may see whose profile is the component
tests' business). A schema-valid ``If-Match`` may name a version the profile is not at: its
412 is the documented answer, so it counts as accepted (``schemathesis.toml`` below).
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
CONFIG = """
[parameters]
"path.user_id" = "fuzzer"

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "412"]
"""


async def test_the_profiles_api_does_what_its_openapi_document_says(tmp_path: Path) -> None:
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    process = ServiceProcess(
        [STOCKFLOW, "serve", "profiles"],
        name="profiles",
        env={
            **os.environ,
            "PROFILES_DATABASE_URL": f"sqlite:///{tmp_path}/profiles.sqlite3",
            "BUS_URL": f"sqlite:///{tmp_path}/bus.sqlite3",
            "PROFILES_SERVICE_TOKEN": TOKEN,
            "STOCKFLOW_LOG_FORMAT": "json",
        },
        port_env="PROFILES_PORT",
        log=tmp_path / "profiles.log",
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
                "60",
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
        writes = [
            line for line in process.log.read_text().splitlines() if '"profiles.written"' in line
        ]
        assert writes, "no generated write reached the database"
    finally:
        process.terminate()
