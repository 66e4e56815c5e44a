"""``stockflow bench http``: wrk's report is read right, and a short run measures every row."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from stockflow.bench.http import BASELINES, HttpBenchConfig, format_http_table, run_http_bench
from stockflow.bench.http_load import Target, parse_wrk, run_builtin

_WRK_REPORT = """\
Running 6s test @ http://127.0.0.1:8000/inventory/SKU-1
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.57ms    1.22ms  22.15ms   90.89%
    Req/Sec     3.36k   162.71     3.63k    83.33%
  Latency Distribution
     50%  850.00us
     75%    9.80ms
     90%   10.44ms
     99%    1.20s
  20083 requests in 6.01s, 3.89MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:   3341.60
Transfer/sec:    662.68KB
"""


def test_a_wrk_report_gives_rate_percentiles_in_milliseconds_and_error_counts() -> None:
    result = parse_wrk(_WRK_REPORT)

    assert result.requests == 20083
    assert result.requests_per_s == pytest.approx(20083 / 6.01)
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p99_ms == pytest.approx(1200.0)
    assert (result.non_2xx, result.errors) == (12, 5)


def test_a_wrk_report_without_a_latency_distribution_is_refused() -> None:
    with pytest.raises(RuntimeError, match="unexpected wrk report"):
        parse_wrk("Running 1s test @ http://x\n  10 requests in 1.00s, 1KB read\n")


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def baseline_port(unused_tcp_port: int) -> Iterator[int]:
    """The bare baseline application served by uvicorn in a child process, once ready."""
    argv = [sys.executable, "-m", "stockflow.bench.http_apps", "bare"]
    process = subprocess.Popen(
        [*argv, "--port", str(unused_tcp_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _ready(unused_tcp_port):
            assert process.poll() is None, "the baseline application exited"
            assert time.monotonic() < deadline, "the baseline application never got ready"
            time.sleep(0.05)
        yield unused_tcp_port
    finally:
        process.terminate()
        process.wait(timeout=20)


async def test_the_builtin_client_counts_responses_and_non_2xx_statuses(
    baseline_port: int,
) -> None:
    found = await run_builtin(
        Target(port=baseline_port, path="/inventory/SKU-1"), connections=4, duration=0.5
    )
    missing = await run_builtin(
        Target(port=baseline_port, path="/nowhere"), connections=2, duration=0.3
    )

    assert found.requests > 0
    assert (found.non_2xx, found.errors) == (0, 0)
    assert 0 < found.p50_ms <= found.p99_ms
    assert missing.requests > 0
    assert missing.non_2xx == missing.requests


@pytest.mark.slow
@pytest.mark.parametrize(
    "client",
    [
        "builtin",
        pytest.param(
            "wrk",
            marks=pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
        ),
    ],
)
def test_a_short_run_measures_the_baselines_and_the_inventory_routes(client: str) -> None:
    lines: list[str] = []
    # The builtin run also measures every row twice in turn (rounds), keeping the best.
    rounds = 2 if client == "builtin" else 1
    config = HttpBenchConfig(duration=1.0, connections=4, warmup=0.2, client=client, rounds=rounds)

    rows = run_http_bench(config, progress=lines.append)

    names = [row.name for row in rows]
    assert names == [name for name, _ in BASELINES] + ["inventory read", "inventory write"]
    assert rows[0].rps_ratio == pytest.approx(1.0)
    for row in rows:
        assert row.result.tool == client
        assert row.result.requests > 0, row
        assert (row.result.non_2xx, row.result.errors) == (0, 0), row
    assert len(lines) == len(rows)
    assert "inventory write" in format_http_table(rows)


@pytest.mark.slow
def test_a_shedding_sweep_row_splits_admitted_latency_from_the_sheds() -> None:
    from stockflow.bench.http_shedding import format_shedding_table, run_shedding_sweep

    lines: list[str] = []
    [row] = run_shedding_sweep(
        [None], connections=4, duration=0.5, warmup=0.1, progress=lines.append
    )

    assert row.max_in_flight is None
    assert row.result.requests > 0
    assert row.result.ok_p99_ms is not None
    assert row.goodput_per_s == pytest.approx(row.result.requests_per_s, rel=0.01)
    assert row.shed_share == 0.0
    assert lines
    assert "none" in format_shedding_table([row])


async def test_a_client_told_to_retry_after_waits_before_asking_again(
    unused_tcp_port: int,
) -> None:
    import asyncio

    async def shed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = b"HTTP/1.1 503 Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(answer)
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()  # the client is done

    server = await asyncio.start_server(shed, "127.0.0.1", unused_tcp_port)
    async with server:
        target = Target(port=unused_tcp_port, path="/")
        eager = await run_builtin(target, connections=2, duration=0.3)
        polite = await run_builtin(target, connections=2, duration=0.3, honour_retry_after=True)

    assert eager.requests > 10
    assert polite.requests == 2  # one each, then a wait past the end of the run
    assert polite.non_2xx == 2


def test_the_in_process_child_prints_the_cpu_per_request_of_its_app(capsys) -> None:
    from stockflow.bench.http_inprocess import main

    main(["kit", "50", "1"])

    assert float(capsys.readouterr().out) > 0


@pytest.mark.slow
def test_the_in_process_measure_runs_each_app_in_a_child_against_the_first() -> None:
    from stockflow.bench.http_inprocess import format_in_process_table, measure_in_process

    rows = measure_in_process(["bare"], requests=50, rounds=1)

    assert [(row.name, row.cpu_ratio) for row in rows] == [("bare", 1.0)]
    assert rows[0].cpu_us_per_request > 0
    assert format_in_process_table(rows).splitlines()[2].startswith("bare")
