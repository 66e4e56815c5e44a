"""Probes: what the steady-state hypotheses and the methods read (``/readyz``, ``/metrics``,
the audit, and the figures the actions measured)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from tests.system.system import SERVICES

from stockflow_chaos import state
from stockflow_chaos.context import Configuration, five_xx, metric_sum, scrape, system


def services_ready(configuration: Configuration) -> bool:
    """Whether every service answers ``/readyz`` with 200."""
    target = system(configuration)
    with httpx.Client(timeout=2, trust_env=False) as http:
        for service in SERVICES:
            try:
                if http.get(f"{target.url(service)}/readyz").status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
    return True


def server_errors(configuration: Configuration, service: str = "edge") -> dict[str, float]:
    """The 5xx answers in *service*'s ``http_requests_total`` since the experiment began:
    all of them, and those other than 503 (edge's answer, with Retry-After, when a downstream
    cannot serve)."""
    samples = scrape(f"{system(configuration).url(service)}/metrics")
    all_then, unavailable_then = state.baseline.get(service, (0.0, 0.0))
    all_5xx = five_xx(samples) - all_then
    unavailable = five_xx(samples, "503") - unavailable_then
    return {"five_xx": all_5xx, "not_503": all_5xx - unavailable}


def breaker_state(configuration: Configuration, name: str) -> float:
    """Edge's ``circuit_breaker_state{name}``: 0 closed, 1 half-open, 2 open."""
    samples = scrape(f"{system(configuration).url()}/metrics")
    return metric_sum(samples, "circuit_breaker_state", name=name)


def me(configuration: Configuration, user: str) -> dict[str, Any]:
    """``GET /me`` through edge for *user*: its status and whether it was degraded."""
    target = system(configuration)
    response = httpx.get(
        f"{target.url()}/me", headers=target.auth(user), timeout=10, trust_env=False
    )
    body = response.json()
    return {"status": response.status_code, "degraded": bool(body.get("degraded"))}


def stock_through_edge(configuration: Configuration, sku: str = "SKU-1") -> int:
    """The status of ``GET /inventory/{sku}`` through edge (a demo SKU by default)."""
    target = system(configuration)
    return httpx.get(
        f"{target.url()}/inventory/{sku}",
        headers=target.auth("chaos-reader"),
        timeout=10,
        trust_env=False,
    ).status_code


def lost_orders(configuration: Configuration) -> dict[str, int]:
    """Orders answered 202 that did not end CONFIRMED or REJECTED (settled by
    ``actions.stop_order_load_and_settle``; zero of zero before the load)."""
    del configuration
    orders = state.figures.get("orders", {})
    return {"accepted": orders.get("accepted", 0), "lost": orders.get("lost", 0)}


def recovery_seconds(configuration: Configuration, service: str, within: float = 60.0) -> float:
    """Seconds from the SIGKILL of *service* (``actions.signal_service``) until a new process
    of it answers ``/readyz`` with 200; also kept in the figures."""
    target = system(configuration)
    killed_at = state.marks[f"SIGKILL:{service}"]
    old_pid = state.marks[f"pid:{service}"]
    deadline = killed_at + within
    with httpx.Client(timeout=1, trust_env=False) as http:
        while time.monotonic() < deadline:
            try:
                ready = http.get(f"{target.url(service)}/readyz").status_code == 200
                if ready and target.child(service).pid != old_pid:
                    seconds = round(time.monotonic() - killed_at, 2)
                    state.figures["recovery_seconds"] = seconds
                    return seconds
            except (httpx.HTTPError, AssertionError):
                pass  # down, or not yet restarted by the supervisor
            time.sleep(0.05)
    raise AssertionError(f"{service} not ready again within {within} s of its SIGKILL")


def audit_is_clean(configuration: Configuration) -> bool:
    """Run ``stockflow audit`` on the system's stores; clean when it exits 0 (its report goes
    to the figures)."""
    target = system(configuration)
    report_file = target.root / "chaos-audit.json"
    result = target.run_audit(report_file)
    state.figures["audit_exit_code"] = result.returncode
    if report_file.exists():
        report = json.loads(report_file.read_text())
        state.figures["audit"] = {k: v for k, v in report.items() if not isinstance(v, list | dict)}
    if result.returncode != 0:
        state.figures["audit_output"] = result.stdout[-3000:]
    return result.returncode == 0


def figures(configuration: Configuration) -> dict[str, Any]:
    """Every figure the run measured (for the journal and the report): the experiments call
    it as their last rollback, after the final audit."""
    del configuration
    kept = {k: v for k, v in state.figures.items() if not k.startswith("_")}
    plain: dict[str, Any] = json.loads(json.dumps(kept, default=str))
    return plain
