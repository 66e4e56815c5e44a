"""``stockflow bench http``: wrk's report is read right, and a short run measures every row."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from stockflow.bench.http import (
    BASELINES,
    HttpBenchConfig,
    check_answers,
    format_http_table,
    run_http_bench,
    serve_service,
)
from stockflow.bench.http_load import FRESH, LoadResult, Target, parse_wrk, run_builtin, run_load

_CLIENTS = [
    "builtin",
    pytest.param(
        "wrk", marks=pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
    ),
]

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
@pytest.mark.parametrize("client", _CLIENTS)
def test_a_short_run_measures_the_baselines_and_the_inventory_routes(client: str) -> None:
    lines: list[str] = []
    # The builtin run also measures every row twice in turn (rounds), keeping the best.
    rounds = 2 if client == "builtin" else 1
    inventory = ("inventory",)
    config = HttpBenchConfig(
        duration=1.0, connections=4, warmup=0.2, client=client, rounds=rounds, services=inventory
    )

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
def test_a_short_run_measures_every_other_service_and_edge_in_front_of_them() -> None:
    # One client (wrk when installed, as the bench picks): the rows' requests are the same
    # for both, and test_every_order_a_run_places_is_a_new_one checks each client's fresh
    # values; a second pass would add ~75 s to make test for no new failure it could catch.
    services = ("profiles", "orders", "notifications", "edge")
    config = HttpBenchConfig(
        duration=1.0, connections=2, warmup=0.0, client="auto", services=services
    )

    rows = run_http_bench(config, progress=lambda _: None)

    names = [row.name for row in rows][len(BASELINES) :]
    assert names == [
        "profiles read",
        "profiles write",
        "orders read",
        "orders write",
        "notifications read",
        "notifications write",
        "edge stock",
        "edge me",
        "edge order",
    ]
    for row in rows:
        assert row.result.requests > 0, row
        assert (row.result.non_2xx, row.result.errors) == (0, 0), row
    [read] = [row for row in rows if row.name == "orders read"]
    assert read.route.startswith("GET /orders/")
    assert "{" not in read.route  # the seeded order's id is in its path


@pytest.mark.slow
@pytest.mark.parametrize("client", _CLIENTS)
def test_every_order_a_run_places_is_a_new_one(client: str, tmp_path) -> None:
    import sqlite3

    with serve_service("orders", tmp_path / "orders") as (_, routes):
        [write] = [target for route, target in routes if route.name == "write"]
        assert ("Idempotency-Key", FRESH) in write.headers
        result = run_load(write, connections=2, duration=1.0, tool=client)
        with sqlite3.connect(tmp_path / "orders" / "orders.sqlite3") as db:
            [(orders,)] = db.execute("SELECT count(*) FROM orders").fetchall()

    assert result.requests > 0
    assert result.non_2xx == 0
    # The seed's and the probe's orders, then at least one per answered request (a replayed
    # key would answer 202 without a new order); the requests in flight at the end add some.
    assert 2 + result.requests <= orders <= 2 + result.requests + 2


@pytest.mark.slow
def test_a_route_that_refuses_its_request_stops_the_bench_before_it_is_measured(
    tmp_path,
) -> None:
    # Webhooks to public hosts refused: the write route's request answers 422.
    refusing = {"NOTIFICATIONS_WEBHOOK_ALLOW_PUBLIC": "false"}

    with (
        pytest.raises(RuntimeError, match="notifications write: 422"),
        serve_service("notifications", tmp_path / "notifications", refusing),
    ):
        pytest.fail("the routes were handed out")


def test_a_row_where_most_answers_are_refusals_stops_the_bench() -> None:
    def result(requests: int, non_2xx: int, errors: int = 0) -> LoadResult:
        return LoadResult(
            tool="wrk",
            requests=requests,
            seconds=1.0,
            requests_per_s=float(requests),
            p50_ms=1.0,
            p99_ms=2.0,
            non_2xx=non_2xx,
            errors=errors,
        )

    check_answers("fine", result(100, 10, 5))
    with pytest.raises(RuntimeError, match="storm: 51 non-2xx answers"):
        check_answers("storm", result(100, 51))
    with pytest.raises(RuntimeError, match="none"):
        check_answers("none", result(0, 0))


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


def test_the_in_process_child_says_ready_then_times_a_round_per_go(capsys, monkeypatch) -> None:
    from stockflow.bench.http_inprocess import main

    monkeypatch.setattr("sys.stdin", io.StringIO("go\ngo\n"))
    main(["kit", "50"])

    ready, *rounds = capsys.readouterr().out.splitlines()
    assert ready == "ready"
    assert len(rounds) == 2
    assert all(float(r) > 0 for r in rounds)


@pytest.mark.slow
def test_the_in_process_measure_runs_each_app_in_a_child_against_the_first() -> None:
    from stockflow.bench.http_inprocess import format_in_process_table, measure_in_process

    rows = measure_in_process(["bare", "kit"], requests=50, rounds=3)

    assert [row.name for row in rows] == ["bare", "kit"]
    assert rows[0].cpu_ratio == 1.0
    assert all(r.cpu_us_per_request > 0 for r in rows)
    assert all(r.median_cpu_us_per_request >= r.cpu_us_per_request for r in rows)
    assert rows[1].cpu_ratio == rows[0].cpu_us_per_request / rows[1].cpu_us_per_request
    assert format_in_process_table(rows).splitlines()[2].startswith("bare")
