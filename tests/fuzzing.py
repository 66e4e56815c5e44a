"""Fuzzing a running service from its own OpenAPI document with schemathesis: one helper for
every service's fuzz test.

``assert_openapi_holds`` runs ``schemathesis run`` with every check on (no 5xx, responses as
documented, problems included, schema-valid requests accepted) against ``base_url``, with the
given headers on every request (a credential, an identity; a ``schemathesis.toml`` in
*workdir* is read), then scans the service's JSON log
for any request answered with a 5xx (schemathesis only sees what it sent).

Every phase runs, the stateful one last: it chains operations along the document's OpenAPI
links (``POST /orders`` -> ``GET /orders/{order_id}`` …) and the ones schemathesis infers.
:func:`stateful_links` reads its report, so a test can check that the declared links were
loaded and followed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["PHASES", "StatefulLinks", "assert_openapi_holds", "server_errors", "stateful_links"]

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
PHASES = ("--phases", "examples,coverage,fuzzing,stateful")
_LINKS = re.compile(
    r"API Links:\s+(\d+) covered / \d+ selected / (\d+) total(?: \((\d+) inferred\))?"
)


class StatefulLinks(NamedTuple):
    """The ``API Links`` line of schemathesis' stateful phase."""

    covered: int
    """Links followed at least once."""
    total: int
    declared: int
    """Links the document declares (the total minus the ones schemathesis inferred)."""


def stateful_links(stdout: str) -> StatefulLinks:
    """What schemathesis' report says of its stateful phase's links. Fails when the stateful
    phase did not run."""
    assert re.search(r"✅\s+Stateful \(in", stdout), "the stateful phase did not run"
    found = _LINKS.search(stdout)
    assert found is not None, "the stateful phase reported no API links"
    covered, total, inferred = (int(n or 0) for n in found.groups())
    return StatefulLinks(covered, total, total - inferred)


def server_errors(log: Path) -> list[str]:
    """The JSON log lines of requests answered with a 5xx."""
    return [line for line in log.read_text().splitlines() if '"status": 5' in line]


def assert_openapi_holds(
    base_url: str,
    *,
    headers: Mapping[str, str],
    log: Path,
    workdir: Path,
    max_examples: int = 40,
    seed: int = 7,
    extra_args: Sequence[str] = (),
    links: int | None = None,
) -> None:
    """Fail with schemathesis' report when any check fails, or when the log has a 5xx; with
    *links*, also when the document does not declare that many links or the stateful phase
    left one of its links unfollowed."""
    command = [SCHEMATHESIS, "run", f"{base_url}/openapi.json", "--checks", "all", *PHASES]
    command += ["--max-examples", str(max_examples), "--seed", str(seed), "--no-color"]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    command += extra_args
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=workdir,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    (workdir / "schemathesis.out").write_text(result.stdout)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout.lower()
    if links is not None:
        report = stateful_links(result.stdout)
        assert report.declared == links, report
        assert report.covered == report.total, report  # every link followed at least once
    errors = server_errors(log)
    assert errors == [], errors[:5]
