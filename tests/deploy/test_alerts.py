"""deploy/prometheus: the rules and the config are valid, and the rules' unit tests
(deploy/prometheus/alerts_test.yml: each alert pending, then firing, then resolved) pass under
promtool (Debian's prometheus package; `make test` and .ci/run install it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from tests.deploy.deploy_files import ALERTS, DEPLOY, alert_rules, tool

WHY = "`make test` installs it (apt-get install prometheus)"
EXPECTED_ALERTS = {
    "CircuitBreakerOpen",
    "ErrorBudgetBurnFast",
    "ErrorBudgetBurnSlow",
    "ConsumerLagHigh",
    "ConsumerOldestMessageOld",
    "DeadLettersGrowing",
    "WebhookDeliveriesDead",
    "OutboxBacklog",
    "OrdersPendingTooLong",
    "InventoryInvariantViolation",
}


@pytest.fixture
def promtool() -> str:
    return tool("/usr/bin/promtool", WHY)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_rules_are_valid(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid(promtool: str) -> None:
    result = _run(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_and_has_a_runbook() -> None:
    alerts = {rule["alert"]: rule for rule in alert_rules() if "alert" in rule}
    assert set(alerts) == EXPECTED_ALERTS
    tested = (DEPLOY / "prometheus" / "alerts_test.yml").read_text()
    operations = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for name, rule in alerts.items():
        assert re.search(rf"alertname: {name}\b", tested), f"{name} has no promtool test"
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == name.lower()
        assert f"### {name}" in operations, f"{name} has no runbook in docs/operations.md"


def test_a_broken_expectation_fails(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: the same file expecting the breaker alert a minute early."""
    broken = (DEPLOY / "prometheus" / "alerts_test.yml").read_text()
    broken = broken.replace(
        "{eval_time: 1m15s, alertname: CircuitBreakerOpen, exp_alerts: []}",
        "{eval_time: 1m15s, alertname: CircuitBreakerOpen, exp_alerts: [{exp_labels: {severity: page, job: edge, name: profiles}}]}",
    )
    assert broken != (DEPLOY / "prometheus" / "alerts_test.yml").read_text()
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    (tmp_path / "alerts_test.yml").write_text(broken)
    result = _run(promtool, "test", "rules", str(tmp_path / "alerts_test.yml"))
    assert result.returncode != 0
