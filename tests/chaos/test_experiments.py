"""The ChaosToolkit experiments of ``chaos/``, each run with the ``chaos`` CLI against its own
``stockflow up --distributed`` (PostgreSQL databases and a NATS stream prefix of its own, free
ports), then judged on its journal and on the figures it measured.

``make chaos`` runs them; the report (JSON and a table) goes to ``chaos/results/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.chaos.report import RESULTS, ROOT, Report, Row
from tests.inventory.crash.private_servers import PrivateNats, PrivatePostgres
from tests.system.system import FAST_BREAKER, SERVICES, distributed

from stockflow_kit.net import free_port

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.timeout(300),  # start-up, the experiment (under 90 s), shutdown
]

CHAOS = str(Path(sys.executable).with_name("chaos"))
EXPERIMENTS = ROOT / "chaos"
SEED = 20261203
"""Seeds the fault proxy's jitter and the pollers' backoff: a run can be repeated."""

FAST_DOWNSTREAM = {
    **FAST_BREAKER,
    "EDGE_DOWNSTREAM_DEADLINE_SECONDS": "1.5",
}
"""Edge's settings for the fault proxy experiment: 0.5 s per attempt, 1.5 s per call (three
attempts fit), and a breaker tried again 2 s after it opens."""


async def run_experiment(
    name: str,
    root: Path,
    postgres_url: str,
    nats_url: str,
    *,
    env: dict[str, str] | None = None,
    proxy_for: str | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Start the distributed system, run ``chaos/<name>.json`` against it, stop the system;
    return the journal, the figures its last rollback (``measured-figures``, after the final
    audit) returned, and the wall time."""
    if shutil.which(CHAOS) is None:
        pytest.fail(f"{CHAOS} is missing: run make sync (chaostoolkit is a dev dependency)")
    started = time.monotonic()
    env = dict(env or {})
    described: dict[str, Any] = {"seed": SEED, **(extra or {})}
    if proxy_for is not None:
        proxy_port = free_port()
        env[f"EDGE_{proxy_for.upper()}_URL"] = f"http://127.0.0.1:{proxy_port}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    journal_file = RESULTS / f"{name}.journal.json"
    journal_file.unlink(missing_ok=True)
    output = root / "chaos-output.txt"
    async with distributed(root, postgres_url, nats_url) as system:
        system.env = env
        await system.start()
        try:
            described["system"] = system.describe()
            if proxy_for is not None:
                upstream = system.port_base + SERVICES.index(proxy_for)
                described["proxy"] = {"port": proxy_port, "upstream_port": upstream, "seed": SEED}
            context_file = root / "chaos-context.json"
            context_file.write_text(json.dumps(described))
            with output.open("wb") as out:
                chaos = await asyncio.create_subprocess_exec(
                    CHAOS,
                    "--no-version-check",
                    "--log-file",
                    str(RESULTS / f"{name}.log"),
                    "run",
                    str(EXPERIMENTS / f"{name}.json"),
                    "--rollback-strategy=always",
                    "--journal-path",
                    str(journal_file),
                    env={
                        **os.environ,
                        "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXPERIMENTS)]),
                        "STOCKFLOW_CHAOS_CONTEXT": str(context_file),
                    },
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                )
                try:
                    await asyncio.wait_for(chaos.wait(), 240)
                finally:
                    if chaos.returncode is None:
                        chaos.kill()
                        await chaos.wait()
        finally:
            code = await system.stop()
        assert code == 0, f"stockflow up exited {code} on SIGTERM:\n{system.tail()}"
    assert journal_file.exists(), output.read_text(errors="replace")[-6000:]
    journal: dict[str, Any] = json.loads(journal_file.read_text())
    figures = next(
        (r["output"] for r in journal["rollbacks"] if r["activity"]["name"] == "measured-figures"),
        {},
    )
    return journal, figures or {}, time.monotonic() - started


def assert_completed(journal: dict[str, Any]) -> None:
    """The experiment completed: both hypotheses held, every activity and rollback succeeded."""
    failed = [
        (r["activity"]["name"], r.get("exception") or r.get("output"))
        for r in journal["run"] + journal["rollbacks"]
        if r["status"] != "succeeded"
    ]
    before = journal["steady_states"]["before"] or {}
    assert before.get("steady_state_met") is True, before.get("probes")
    after = journal["steady_states"]["after"] or {}
    deviations = [
        (p["activity"]["name"], p.get("output"))
        for p in after.get("probes", [])
        if not p.get("tolerance_met", True)
    ]
    assert journal["status"] == "completed", (journal["status"], deviations, failed)
    assert not journal["deviated"], deviations
    assert failed == [], failed
    assert after.get("steady_state_met") is True, deviations


async def test_a_sigkill_of_inventory_mid_load_loses_no_accepted_order(
    servers: tuple[str, str], tmp_path: Path, report: Report
) -> None:
    journal, figures, wall = await run_experiment("inventory-sigkill", tmp_path, *servers)
    orders = figures.get("orders", {})
    report.add(
        Row(
            "inventory-sigkill",
            journal["status"],
            wall,
            recovery_seconds=figures.get("recovery_seconds"),
            lost_orders=orders.get("lost"),
            five_xx=orders.get("load", {}).get("five_xx"),
            max_seconds=orders.get("load", {}).get("max_seconds"),
            figures=figures,
        )
    )
    assert_completed(journal)
    assert orders["accepted"] > 50, orders  # the load ran through the kill
    assert orders["lost"] == 0, orders
    assert orders["load"]["five_xx"] == 0, orders
    assert 0 < figures["recovery_seconds"] < 60, figures
    assert figures["audit_exit_code"] == 0, figures


async def test_a_sigstop_of_profiles_is_served_degraded_and_the_breaker_opens_and_closes(
    servers: tuple[str, str], tmp_path: Path, report: Report
) -> None:
    journal, figures, wall = await run_experiment(
        "profiles-sigstop", tmp_path, *servers, env=FAST_BREAKER
    )
    me = figures.get("me", {})
    client = figures.get("client", {})
    report.add(
        Row(
            "profiles-sigstop",
            journal["status"],
            wall,
            retry_amplification=client.get("retry_amplification"),
            five_xx=me.get("five_xx"),
            max_seconds=me.get("max_seconds"),
            five_xx_not_503_retry_after=me.get("five_xx_not_503_retry_after"),
            figures=figures,
        )
    )
    assert_completed(journal)
    assert me["five_xx"] == 0, me
    assert me["no_answer"] == 0, me
    assert me["degraded"] > 0, me  # served from edge's copy while profiles was stopped
    assert me["statuses"].get("200", 0) == me["requests"], me
    assert me["past_deadline"] == 0, me  # GET /me's deadline (1.5 s) held
    assert client["breaker_opened"] >= 1, client
    assert client["breaker_closed"] >= 1, client
    assert client["attempts_by_outcome"]["timeout"] > 0, client  # the RED metrics show it
    assert client["attempts_by_outcome"]["circuit_open"] > 0, client


async def test_a_slow_then_cut_inventory_keeps_timeouts_retry_budget_and_503s(
    servers: tuple[str, str], tmp_path: Path, report: Report
) -> None:
    journal, figures, wall = await run_experiment(
        "inventory-slow-then-cut",
        tmp_path,
        *servers,
        env=FAST_DOWNSTREAM,
        proxy_for="inventory",
    )
    stock = figures.get("stock", {})
    client = figures.get("client", {})
    report.add(
        Row(
            "inventory-slow-then-cut",
            journal["status"],
            wall,
            retry_amplification=client.get("retry_amplification"),
            five_xx=stock.get("five_xx"),
            max_seconds=stock.get("max_seconds"),
            five_xx_not_503_retry_after=stock.get("five_xx_not_503_retry_after"),
            figures=figures,
        )
    )
    assert_completed(journal)
    assert stock["five_xx"] > 0, stock  # the cut was seen: edge answered 503s
    assert stock["five_xx_not_503_retry_after"] == 0, stock
    assert stock["no_answer"] == 0, stock
    assert stock["past_deadline"] == 0, stock  # 1.5 s per call, plus 0.5 s of slack
    assert client["attempts_by_outcome"]["timeout"] > 0, client
    assert client["retries"] > 0, client
    assert client["retries"] <= client["budget_allowance"], client
    assert client["retry_amplification"] >= 1.0, client
    assert client["breaker_opened"] >= 1, client
    assert client["breaker_closed"] >= 1, client
    proxy = figures.get("proxy", {})
    assert proxy.get("resets", 0) > 0, proxy
    assert proxy.get("delayed_chunks", 0) > 0, proxy


async def test_a_nats_restart_mid_load_loses_no_accepted_order(
    servers: tuple[str, str], tmp_path: Path, report: Report
) -> None:
    """The run's own nats-server (the shared one stays up), SIGKILLed mid-load and started
    again by the experiment on the same port and JetStream store."""
    postgres_url, _ = servers
    nats = PrivateNats.create()  # no nats-server binary: skips, or fails under CI=true
    nats.start()
    assert nats.process is not None
    try:
        journal, figures, wall = await run_experiment(
            "nats-restart",
            tmp_path,
            postgres_url,
            nats.url,
            extra={
                "nats": {
                    "binary": str(nats.binary),
                    "root": str(nats.root),
                    "port": nats.port,
                    "pid": nats.process.pid,
                }
            },
        )
    finally:
        restarted = tmp_path / "nats-restarted.pid"  # the experiment's own nats-server
        if restarted.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(restarted.read_text()), signal.SIGKILL)
        nats.destroy()
    orders = figures.get("orders", {})
    report.add(
        Row(
            "nats-restart",
            journal["status"],
            wall,
            recovery_seconds=figures.get("bus_recovery_seconds"),
            lost_orders=orders.get("lost"),
            five_xx=orders.get("load", {}).get("five_xx"),
            max_seconds=orders.get("load", {}).get("max_seconds"),
            figures=figures,
        )
    )
    assert_completed(journal)
    assert orders["accepted"] > 50, orders
    assert orders["lost"] == 0, orders
    assert orders["load"]["five_xx"] == 0, orders  # the outbox takes orders while NATS is down
    assert figures["nats_outage_seconds"] >= 5, figures
    assert 0 < figures["bus_recovery_seconds"] < 60, figures
    assert figures["audit_exit_code"] == 0, figures


async def test_a_postgres_restart_mid_load_loses_no_accepted_order_and_answers_only_503s(
    servers: tuple[str, str], tmp_path: Path, report: Report
) -> None:
    """The run's own PostgreSQL (every service's database; the shared server stays up),
    crashed mid-load with ``pg_ctl stop -m immediate`` (``fast`` with
    ``STOCKFLOW_CHAOS_POSTGRES_STOP_MODE=fast``) and started again by the experiment on the
    same port and data directory."""
    _, nats_url = servers
    postgres = PrivatePostgres.create()  # no initdb/pg_ctl: skips, or fails under CI=true
    try:
        postgres.start()
        journal, figures, wall = await run_experiment(
            "postgres-restart",
            tmp_path,
            postgres.url,
            nats_url,
            extra={
                "postgres": {
                    "bin_dir": str(postgres.bin_dir),
                    "root": str(postgres.root),
                    "port": postgres.port,
                    "as_user": postgres.as_user,
                }
            },
        )
    finally:
        postgres.destroy()
    orders = figures.get("orders", {})
    load = orders.get("load", {})
    recovery = figures.get("recovery", {})
    report.add(
        Row(
            "postgres-restart",
            journal["status"],
            wall,
            recovery_seconds=recovery.get("every_service_ready_seconds"),
            lost_orders=orders.get("lost"),
            five_xx=load.get("five_xx"),
            max_seconds=load.get("max_seconds"),
            five_xx_not_503_retry_after=load.get("five_xx_not_503_retry_after"),
            figures=figures,
        )
    )
    assert_completed(journal)
    assert orders["accepted"] > 50, orders
    assert orders["lost"] == 0, orders
    assert load["five_xx"] > 0, load  # the outage was seen: edge answered 503s ...
    assert load["five_xx_not_503_retry_after"] == 0, load  # ... and nothing else
    assert load["no_answer"] == 0, load
    down = figures["readyz_during_outage"]["status"]
    assert down["orders"] == 503, down  # readiness said so while PostgreSQL was down
    assert down["inventory"] == 503, down
    outage = figures["outage"]
    assert outage["while_down"].get("503", 0) > 0, outage
    assert outage["first_202_after_restart_seconds"] is not None, outage  # orders taken again
    assert figures["postgres_outage_seconds"] >= 4, figures
    assert 0 < recovery["first_order_confirmed_seconds"] < 60, recovery
    assert 0 < recovery["every_service_ready_seconds"] < 60, recovery
    client = figures["client"]
    assert client["breaker_opened"] >= 1, client  # edge shed the calls to orders ...
    assert client["breaker_closed"] >= 1, client  # ... and closed its breaker again
    assert figures["audit_exit_code"] == 0, figures


async def test_duplicated_and_reordered_messages_on_the_bus_change_nothing_twice(
    servers: tuple[str, str], tmp_path: Path, report: Report
) -> None:
    journal, figures, wall = await run_experiment("bus-duplicates", tmp_path, *servers)
    orders = figures.get("orders", {})
    report.add(
        Row(
            "bus-duplicates",
            journal["status"],
            wall,
            lost_orders=orders.get("lost"),
            five_xx=orders.get("load", {}).get("five_xx"),
            max_seconds=orders.get("load", {}).get("max_seconds"),
            figures=figures,
        )
    )
    assert_completed(journal)
    assert figures["injected"]["copies_published"] > 100, figures  # a real storm of copies
    assert orders["lost"] == 0, orders
    assert orders["load"]["five_xx"] == 0, orders
    skipped = figures["duplicates_skipped"]
    assert skipped["inventory"] > 0, skipped  # the copies reached the consumers ...
    assert skipped["orders"] > 0, skipped
    assert figures["audit_exit_code"] == 0, figures  # ... and no order was reserved twice
