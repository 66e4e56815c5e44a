"""Chaos experiments: a server they need that is missing fails them under ``CI=true``; the
summary table of the session's experiments is printed at the end (and written under
``chaos/results/``)."""

from __future__ import annotations

import os

import pytest
from tests.chaos.report import RESULTS, Report


@pytest.fixture
def servers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The PostgreSQL and NATS URLs; under ``CI=true`` a missing server fails the experiment
    instead of skipping it (the session's server fixtures are asked for only after that)."""
    if os.environ.get("CI") == "true":
        monkeypatch.setenv("STOCKFLOW_REQUIRE_SERVICES", "1")
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("nats_url")


@pytest.fixture(scope="session")
def report() -> Report:
    """The session's chaos report: written (JSON and a table) after the last experiment."""
    return Report()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    table = RESULTS / "summary.txt"
    if table.exists() and Report.written_this_session:
        terminalreporter.write_sep("=", "chaos experiments")
        terminalreporter.write_line(table.read_text())
