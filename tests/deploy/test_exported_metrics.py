"""Every metric an alert rule or a dashboard panel names is one the running system exports:
an embedded ``stockflow up``, one order placed and a profile read through edge, then each
service's ``/metrics`` scraped. A renamed metric in a service fails here."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.deploy.deploy_files import alert_rules, dashboard_builder, panel_queries
from tests.deploy.promql import exported_names, metric_names
from tests.system.system import SERVICES, System, embedded, running

pytestmark = pytest.mark.slow


async def _exercise_and_scrape(system: System) -> list[str]:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        placed = await http.post(
            f"{system.url()}/orders",
            headers={**system.auth("alice"), "Idempotency-Key": uuid.uuid4().hex},
            json={"lines": [{"sku": "SKU-1", "qty": 1}]},
        )
        assert placed.status_code == 202, placed.text
        assert (
            await http.get(f"{system.url()}/me", headers=system.auth("alice"))
        ).status_code == 200
        order = placed.json()["id"]
        for _ in range(100):  # settled: the saga's events went through every consumer
            got = await http.get(f"{system.url()}/orders/{order}", headers=system.auth("alice"))
            if got.json()["status"] != "PENDING":
                break
            await asyncio.sleep(0.1)
        texts = []
        for service in SERVICES:
            answer = await http.get(f"{system.url(service)}/metrics")
            assert answer.status_code == 200
            texts.append(answer.text)
        return texts


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    root: Path = tmp_path_factory.mktemp("metrics")
    for system in running(embedded(root)):
        yield exported_names(asyncio.run(_exercise_and_scrape(system)))


def test_alert_rules_name_only_exported_metrics(exported: set[str]) -> None:
    rules = alert_rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    used = {name for rule in rules for name in metric_names(rule["expr"])} - recorded
    assert used, "no metric found in the rules: the extraction is broken"
    assert used - exported == set(), f"alerts use metrics no service exports: {used - exported}"


def test_dashboard_queries_name_only_exported_metrics(exported: set[str]) -> None:
    missing = {
        title: sorted(metric_names(expr) - exported)
        for title, exprs in panel_queries(dashboard_builder().build()).items()
        for expr in exprs
        if metric_names(expr) - exported
    }
    assert missing == {}, f"panels query metrics no service exports: {missing}"
