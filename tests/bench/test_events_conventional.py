"""The conventional peer of ``stockflow bench events``: a stock table, one transaction per
command, a conditional UPDATE; it must end where the reference model does, and its audit must
catch a broken table."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from stockflow.bench.conventional import run_conventional
from stockflow.bench.workload import generate_workload


def test_the_conventional_design_ends_where_the_reference_model_does(tmp_path: Path) -> None:
    workload = generate_workload(events=600, skus=30, seed=3)
    result = run_conventional(workload.envelopes, f"sqlite:///{tmp_path / 'c.sqlite3'}")

    assert result.violations == []
    assert result.capped is False
    assert result.stock == workload.model.stock()
    assert result.events == workload.expected_events
    assert result.commands == len(workload.envelopes)
    assert result.transactions >= workload.unique  # a rejection takes a second one
    assert result.events_per_s > 0


def test_its_audit_finds_a_table_that_breaks_the_invariants(tmp_path: Path) -> None:
    workload = generate_workload(events=300, skus=5, seed=4)
    path = tmp_path / "c.sqlite3"
    run_conventional(workload.envelopes, f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE stock SET reserved = on_hand + 1")
    again = run_conventional([], f"sqlite:///{path}")  # the tables are kept; nothing applied

    assert any("reserved above on_hand" in v for v in again.violations)
    assert any("not the sum of its holds" in v for v in again.violations)
    assert any("processed ids for 0 unique commands" in v for v in again.violations)


@pytest.mark.integration
def test_on_postgresql_too(postgres_url: str) -> None:
    name = f"stockflow_test_conv_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        url = urlsplit(postgres_url)._replace(scheme="postgresql+psycopg", path=f"/{name}")
        workload = generate_workload(events=300, skus=10, seed=5)
        result = run_conventional(workload.envelopes, url.geturl())
        assert (result.violations, result.stock) == ([], workload.model.stock())
    finally:
        asyncio.run(_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
