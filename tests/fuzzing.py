"""Fuzzing a running service from its own OpenAPI document with schemathesis: one helper for
every service's fuzz test.

``assert_openapi_holds`` runs ``schemathesis run`` with every check on (no 5xx, responses as
documented, problems included, schema-valid requests accepted) against ``base_url``, with the
given headers on every request (a credential, an identity; a ``schemathesis.toml`` in
*workdir* is read), then scans the service's JSON log
for any request answered with a 5xx (schemathesis only sees what it sent).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["assert_openapi_holds", "server_errors"]

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


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
) -> None:
    """Fail with schemathesis' report when any check fails, or when the log has a 5xx."""
    command = [SCHEMATHESIS, "run", f"{base_url}/openapi.json", "--checks", "all"]
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
    errors = server_errors(log)
    assert errors == [], errors[:5]
