"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes the distributed system while
profiles is SIGSTOPped (the GC-pause heisenbug): edge's breaker to profiles opens and the
CircuitBreakerOpen rule of deploy/prometheus/alerts.yml goes pending, then firing; after
SIGCONT the breaker closes and the alert resolves. The rule's expression is the committed one
with its two durations scaled down (``[1m]`` to ``[4s]``, ``for: 30s`` to ``for: 3s``) so the
run takes seconds, not minutes; the timings are promtool-tested at full scale
(alerts_test.yml). Alertmanager is not run: Debian's prometheus package does not ship it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.deploy.deploy_files import alert_rules, tool
from tests.system.system import FAST_BREAKER, SERVICES, System, running_distributed

from stockflow_kit.lifecycle import ServiceProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, nats_url: str
) -> Iterator[System]:
    root = tmp_path_factory.mktemp("alerting")
    yield from running_distributed(root, postgres_url, nats_url, FAST_BREAKER)


def _scaled_breaker_rule() -> dict[str, Any]:
    (rule,) = [r for r in alert_rules() if r.get("alert") == "CircuitBreakerOpen"]
    assert "[1m]" in rule["expr"]
    assert rule["for"] == "30s"
    return {**rule, "expr": rule["expr"].replace("[1m]", "[4s]"), "for": "3s"}


def _prometheus(system: System, root: Path) -> ServiceProcess:
    binary = tool("/usr/bin/prometheus", "`make test` installs it (apt-get install prometheus)")
    (root / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "breaker", "rules": [_scaled_breaker_rule()]}]})
    )
    scrape = [
        {
            "job_name": service,
            "static_configs": [{"targets": [system.url(service).removeprefix("http://")]}],
        }
        for service in SERVICES
    ]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(root / "rules.yml")],
        "scrape_configs": scrape,
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    return ServiceProcess(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        name="prometheus",
        port=port,
        ready_path="/-/ready",
        log=root / "prometheus.log",
    )


async def _breaker_alerts(http: httpx.AsyncClient, prometheus: ServiceProcess) -> set[str]:
    """The states of CircuitBreakerOpen for edge → profiles now (empty: inactive)."""
    answer = (await http.get(f"{prometheus.base_url}/api/v1/alerts")).json()
    return {
        alert["state"]
        for alert in answer["data"]["alerts"]
        if alert["labels"]["alertname"] == "CircuitBreakerOpen"
        and alert["labels"].get("name") == "profiles"
        and alert["labels"].get("job") == "edge"
    }


async def _wait_for(
    condition: str, check: Any, within: float, seen: list[tuple[float, set[str]]]
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check(seen[-1][1] if seen else set()):
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"{condition} not within {within} s; seen {seen[-10:]}")


async def test_breaker_alert_pends_fires_and_resolves(system: System, tmp_path: Path) -> None:
    prometheus = _prometheus(system, tmp_path)
    prometheus.start()
    seen: list[tuple[float, set[str]]] = []
    try:
        await prometheus.wait_ready(within=30)
        async with httpx.AsyncClient(timeout=5, trust_env=False) as http:

            async def traffic() -> None:  # edge only learns of the pause by calling profiles
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        answer = await http.get(f"{system.url()}/me", headers=system.auth("alice"))
                        assert answer.status_code < 500, answer.text
                    await asyncio.sleep(0.2)

            async def watch() -> None:
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        seen.append((time.monotonic(), await _breaker_alerts(http, prometheus)))
                    await asyncio.sleep(0.2)

            tasks = [asyncio.create_task(traffic()), asyncio.create_task(watch())]
            try:
                await asyncio.sleep(3)  # scraped healthy first
                assert all(states == set() for _, states in seen), seen
                profiles = system.child("profiles")
                profiles.send_signal(signal.SIGSTOP)
                try:
                    pending = await _wait_for("pending", lambda s: "pending" in s, 15, seen)
                    firing = await _wait_for("firing", lambda s: "firing" in s, 15, seen)
                finally:
                    profiles.send_signal(signal.SIGCONT)
                resolved = await _wait_for("resolved", lambda s: s == set(), 30, seen)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        print(  # noqa: T201 - the measured timings, for the report (-s)
            f"breaker alert: pending after {pending:.1f} s of SIGSTOP, firing {firing:.1f} s"
            f" later, resolved {resolved:.1f} s after SIGCONT"
        )
    finally:
        prometheus.terminate()
