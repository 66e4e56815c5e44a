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
import sys
from pathlib import Path

import pytest
from tests.fuzzing import assert_openapi_holds

from stockflow_kit.lifecycle import ServiceProcess

pytestmark = pytest.mark.slow

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
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
        assert_openapi_holds(
            process.base_url,
            headers={"Authorization": f"Bearer {TOKEN}", "X-Stockflow-User": "fuzzer"},
            log=process.log,
            workdir=tmp_path,
            max_examples=60,
        )
        writes = [
            line for line in process.log.read_text().splitlines() if '"profiles.written"' in line
        ]
        assert writes, "no generated write reached the database"
    finally:
        process.terminate()
