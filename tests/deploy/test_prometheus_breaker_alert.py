"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes the distributed system while
profiles is SIGSTOPped (the GC-pause heisenbug): edge's breaker to profiles opens and the
CircuitBreakerOpen rule of deploy/prometheus/alerts.yml goes pending, then firing; after
SIGCONT the breaker closes and the alert resolves. The rule's expression is the committed one
with its two durations scaled down (``[1m]`` to ``[4s]``, ``for: 30s`` to ``for: 3s``) so the
run takes seconds, not minutes; the timings are promtool-tested at full scale
(alerts_test.yml). Prometheus sends its alerts to a real Alertmanager (Debian's
prometheus-alertmanager), whose webhook receiver (an aiohttp server in the test) must get the
firing notification, then the resolved one."""

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
from aiohttp import web
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


class Receiver:
    """Alertmanager's webhook receiver: every notification it POSTs, with when it came."""

    def __init__(self) -> None:
        self.notifications: list[tuple[float, dict[str, Any]]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def alerts(request: web.Request) -> web.Response:
            self.notifications.append((time.monotonic(), await request.json()))
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/alerts", alerts)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/alerts"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def breaker(self, status: str) -> list[float]:
        """When notifications of CircuitBreakerOpen (edge -> profiles) in *status* came."""
        return [
            at
            for at, body in self.notifications
            for alert in body.get("alerts", [])
            if alert.get("status") == status
            and alert["labels"].get("alertname") == "CircuitBreakerOpen"
            and alert["labels"].get("name") == "profiles"
        ]


def _alertmanager(receiver: Receiver, root: Path) -> ServiceProcess:
    binary = tool(
        "/usr/bin/prometheus-alertmanager",
        "`make test` installs it (apt-get install prometheus-alertmanager)",
    )
    config = {
        "route": {
            "receiver": "test",
            "group_by": ["alertname", "name"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "test", "webhook_configs": [{"url": receiver.url, "send_resolved": True}]}
        ],
    }
    (root / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    return ServiceProcess(
        [
            binary,
            f"--config.file={root / 'alertmanager.yml'}",
            f"--storage.path={root / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # one instance: no gossip port
        ],
        name="alertmanager",
        port=port,
        ready_path="/-/ready",
        log=root / "alertmanager.log",
    )


def _prometheus(system: System, root: Path, alertmanager: ServiceProcess) -> ServiceProcess:
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
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [alertmanager.base_url.removeprefix("http://")]}]}
            ]
        },
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
    receiver = Receiver()
    await receiver.start()
    alertmanager = _alertmanager(receiver, tmp_path)
    prometheus = _prometheus(system, tmp_path, alertmanager)
    alertmanager.start()
    prometheus.start()
    seen: list[tuple[float, set[str]]] = []
    try:
        await alertmanager.wait_ready(within=30)
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
                    fired_at = time.monotonic()
                    notified = await _notified(receiver, "firing", 20)
                finally:
                    profiles.send_signal(signal.SIGCONT)
                continued_at = time.monotonic()
                resolved = await _wait_for("resolved", lambda s: s == set(), 30, seen)
                cleared = await _notified(receiver, "resolved", 30)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        assert receiver.breaker("firing")[0] < receiver.breaker("resolved")[0]
        print(  # noqa: T201 - the measured timings, for the report (-s)
            f"breaker alert: pending after {pending:.1f} s of SIGSTOP, firing {firing:.1f} s"
            f" later, resolved {resolved:.1f} s after SIGCONT; Alertmanager's webhook got"
            f" it firing {notified - fired_at:.1f} s after Prometheus fired it, resolved"
            f" {cleared - continued_at:.1f} s after SIGCONT"
        )
    finally:
        prometheus.terminate()
        alertmanager.terminate()
        await receiver.stop()


async def _notified(receiver: Receiver, status: str, within: float) -> float:
    """When the first CircuitBreakerOpen notification in *status* reached the receiver."""
    deadline = time.monotonic() + within
    while not receiver.breaker(status):
        assert time.monotonic() < deadline, (status, receiver.notifications[-5:])
        await asyncio.sleep(0.2)
    return receiver.breaker(status)[0]
