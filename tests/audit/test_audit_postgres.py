"""The auditor on a PostgreSQL event store (tables written with raw SQL in a fresh schema)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from tests.audit.postgres_store import write_store
from typer.testing import CliRunner

from stockflow.audit import AuditSourceError, Check, audit_url
from stockflow.runtime.cli import app

pytestmark = pytest.mark.integration

EVENTS = [
    ("A", 1, "StockReceived", {"qty": 5}),
    ("A", 2, "StockReserved", {"order_id": "o1", "qty": 2}),
    ("A", 3, "StockShipped", {"order_id": "o1", "qty": 2}),
]


def test_a_consistent_postgres_store_passes(postgres_url: str) -> None:
    schema = f"audit_{uuid.uuid4().hex[:10]}"
    asyncio.run(write_store(postgres_url, schema, EVENTS, [("A", 3, 0, 3)]))
    report = audit_url(postgres_url, schema=schema)
    assert report.ok, report.violations
    assert (report.skus, report.events) == (1, 3)


def test_a_broken_postgres_store_exits_one_naming_what_broke(postgres_url: str) -> None:
    schema = f"audit_{uuid.uuid4().hex[:10]}"
    asyncio.run(write_store(postgres_url, schema, EVENTS, [("A", 5, 0, 3)], duplicate_id=True))
    report = audit_url(postgres_url, schema=schema)
    assert {c for c, n in report.counts.items() if n} == {
        Check.PROJECTION,
        Check.CONSERVATION,
        Check.EVENT_IDS,
    }
    result = CliRunner().invoke(
        app, ["audit", "--event-store-url", postgres_url, "--schema", schema]
    )
    assert result.exit_code == 1, result.output


def test_a_postgres_without_the_store_cannot_be_audited(postgres_url: str) -> None:
    with pytest.raises(AuditSourceError, match="no inventory event store in schema"):
        audit_url(postgres_url, schema="nothing_here")


def test_an_unreachable_postgres_exits_two() -> None:
    result = CliRunner().invoke(
        app, ["audit", "--event-store-url", "postgresql://postgres@127.0.0.1:1/none"]
    )
    assert result.exit_code == 2
    assert "cannot connect" in result.output
