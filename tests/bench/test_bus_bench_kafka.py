"""``stockflow bench bus -b kafka`` starts a private Tansu broker, measures, and stops it."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stockflow.runtime.cli import app

pytestmark = pytest.mark.slow


def test_the_kafka_backend_runs_on_a_private_tansu_that_is_gone_afterwards(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "bus", "-b", "memory", "-b", "kafka", "--messages", "200"]
    result = CliRunner().invoke(app, [*args, "--batch-size", "100", "--json", str(out)])

    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_bytes())
    assert [(r["backend"], r["batch_size"], r["messages"]) for r in rows] == [
        ("memory", 100, 200),
        ("kafka", 100, 200),
    ]
    assert all(r["publish_per_s"] > 0 and r["consume_per_s"] > 0 for r in rows)
    [port] = re.findall(
        r"started a private Tansu broker on kafka://127\.0\.0\.1:(\d+)", result.output
    )
    with pytest.raises(ConnectionRefusedError):  # stopped with the command
        socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()


def test_an_unknown_backend_is_refused_naming_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["bench", "bus", "-b", "pulsar"])

    assert result.exit_code == 2
    assert "memory, embedded, distributed, kafka" in result.output
