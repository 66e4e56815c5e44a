"""Property-based fuzzing of the notifications HTTP API from its own OpenAPI schema.

Schemathesis generates requests from ``/openapi.json`` against a real ``stockflow serve
notifications`` process (SQLite + SqliteLogBus in a temp dir) with every check on but one: no
5xx, every response as documented. The credential and a staff identity with a user id are sent
on every request (as edge does), so the bodies and the paths are reached. The check left out,
``positive_data_acceptance``, expects every schema-valid request to succeed; a schema-valid
webhook URL that points at a private or local host is refused on purpose (the SSRF rules, a
documented 422), so it cannot hold here.
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


async def test_the_notifications_api_does_what_its_openapi_document_says(tmp_path: Path) -> None:
    process = ServiceProcess(
        [STOCKFLOW, "serve", "notifications"],
        name="notifications",
        env={
            **os.environ,
            "NOTIFICATIONS_DATABASE_URL": f"sqlite:///{tmp_path}/notifications.sqlite3",
            "NOTIFICATIONS_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]',
            "BUS_URL": f"sqlite:///{tmp_path}/bus.sqlite3",
            "NOTIFICATIONS_SERVICE_TOKEN": TOKEN,
            "STOCKFLOW_LOG_FORMAT": "json",
        },
        port_env="NOTIFICATIONS_PORT",
        log=tmp_path / "notifications.log",
    )
    process.start()
    try:
        await process.wait_ready(within=60)
        assert_openapi_holds(
            process.base_url,
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "X-Stockflow-User": "fuzzer",
                "X-Stockflow-Role": "staff",
            },
            log=process.log,
            workdir=tmp_path,
            max_examples=40,
            extra_args=["--exclude-checks", "positive_data_acceptance"],
        )
    finally:
        process.terminate()
