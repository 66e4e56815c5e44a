"""PostgreSQL as a fault: stop the run's private server (``pg_ctl stop -m fast`` or
``immediate``) and start it again on the same port and data directory
(``tests.inventory.crash.private_servers.PrivatePostgres``), and measure how long the system
takes to come back."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import httpx
from tests.inventory.crash.private_servers import PrivatePostgres
from tests.system.system import SERVICES

from stockflow_chaos import state
from stockflow_chaos.context import Configuration, described, system
from stockflow_chaos.load import Sample
from stockflow_kit.resilience import Backoff


def _server(configuration: Configuration) -> PrivatePostgres:
    wanted = described(configuration)["postgres"]
    return PrivatePostgres(
        bin_dir=Path(wanted["bin_dir"]),
        root=Path(wanted["root"]),
        port=wanted["port"],
        as_user=wanted["as_user"],
    )


def stop_postgres(configuration: Configuration, mode: Literal["fast", "immediate"] = "fast") -> str:
    """Stop the private PostgreSQL with ``pg_ctl stop -m <mode>`` (``fast``: open
    transactions rolled back, every connection closed; ``immediate``: a crash, the next start
    replays the WAL)."""
    server = _server(configuration)
    state.marks["postgres_stopped"] = time.monotonic()
    server.stop(mode)  # pg_ctl -w: returns once the postmaster is gone
    state.figures["postgres_stop"] = {
        "mode": mode,
        "pg_ctl_seconds": round(time.monotonic() - state.marks["postgres_stopped"], 2),
    }
    return f"stopped ({mode})"


def start_postgres(configuration: Configuration) -> str:
    """Start the private PostgreSQL again on its port and data directory, unless it runs
    (also the rollback)."""
    server = _server(configuration)
    if server.running():
        return "running"
    server.start()  # pg_ctl -w: returns once it accepts connections
    state.marks["postgres_started"] = time.monotonic()
    state.figures["postgres_outage_seconds"] = round(
        state.marks["postgres_started"]
        - state.marks.get("postgres_stopped", state.marks["postgres_started"]),
        2,
    )
    return "started"


def database_recovery_seconds(
    configuration: Configuration, within: float = 60.0
) -> dict[str, float]:
    """Seconds from PostgreSQL's restart until (a) an order placed through edge is CONFIRMED
    again and (b) every service answers ``/readyz`` with 200. A placement edge refuses (503
    while orders reconnects) is tried again; an order the saga timer rejected is replaced by
    a new one. Kept in the figures as ``recovery``."""
    target = system(configuration)
    sku = state.figures["_skus"][0]
    customer = target.auth("chaos-probe")
    started = state.marks["postgres_started"]
    deadline = started + within
    rng = random.Random(described(configuration).get("seed", 0))

    async def first_confirmed(http: httpx.AsyncClient) -> float:
        backoff = Backoff(base=0.05, cap=0.2, rng=rng)
        order = ""
        while time.monotonic() < deadline:
            try:
                if not order:
                    placed = await http.post(
                        f"{target.url()}/orders",
                        json={"lines": [{"sku": sku, "qty": 1}]},
                        headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
                    )
                    if placed.status_code == 202:
                        order = f"{target.url()}/orders/{placed.json()['id']}"
                if order:
                    status = (await http.get(order, headers=customer)).json().get("status")
                    if status == "CONFIRMED":
                        return round(time.monotonic() - started, 2)
                    if status not in ("PENDING", None):
                        order = ""  # rejected by the saga timer while the database was down
            except httpx.HTTPError:
                pass  # edge itself did not answer: measured, not an error of the probe
            await backoff.wait()
        raise AssertionError(f"no order confirmed within {within} s of PostgreSQL's restart")

    async def every_service_ready(http: httpx.AsyncClient) -> float:
        backoff = Backoff(base=0.05, cap=0.2, rng=rng)
        while time.monotonic() < deadline:
            statuses = []
            for service in SERVICES:
                try:
                    statuses.append((await http.get(f"{target.url(service)}/readyz")).status_code)
                except httpx.HTTPError:
                    statuses.append(0)
            if all(status == 200 for status in statuses):
                return round(time.monotonic() - started, 2)
            await backoff.wait()
        raise AssertionError(f"not every service ready within {within} s of PostgreSQL's restart")

    async def measure() -> dict[str, float]:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
            confirmed, ready = await asyncio.gather(
                first_confirmed(http), every_service_ready(http)
            )
        return {"first_order_confirmed_seconds": confirmed, "every_service_ready_seconds": ready}

    report = asyncio.run(measure())
    state.figures["recovery"] = report
    return report


def unready_during_outage(configuration: Configuration) -> dict[str, Any]:
    """Each service's ``/readyz`` status now, and how long it took to answer (taken while
    PostgreSQL is down: the services that depend on it must say 503; a probe bounded by the
    kit's ``readiness_timeout``, 2 s, may take that long). Kept as ``readyz_during_outage``."""
    target = system(configuration)
    statuses: dict[str, int] = {}
    seconds: dict[str, float] = {}
    with httpx.Client(timeout=5, trust_env=False) as http:
        for service in SERVICES:
            asked = time.monotonic()
            try:
                statuses[service] = http.get(f"{target.url(service)}/readyz").status_code
            except httpx.HTTPError:
                statuses[service] = 0
            seconds[service] = round(time.monotonic() - asked, 2)
    report = {"status": statuses, "seconds": seconds}
    state.figures["readyz_during_outage"] = report
    return report


def outage_answers(configuration: Configuration) -> dict[str, Any]:
    """What the order load got around the outage, from its samples (taken after
    ``actions.stop_order_load_and_settle``): the answers of requests sent while PostgreSQL
    was down and after it was back, the Retry-After values and problem titles of the 503s,
    and the seconds from the restart to the first 202. Kept as ``outage``."""
    del configuration
    samples = state.loads["orders"].samples
    stopped, started = state.marks["postgres_stopped"], state.marks["postgres_started"]

    def statuses(chosen: list[Sample]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sample in chosen:
            counts[str(sample.status)] = counts.get(str(sample.status), 0) + 1
        return counts

    down = [s for s in samples if stopped <= s.started < started]
    after = [s for s in samples if s.started >= started]
    refused = [s for s in samples if s.status == 503]
    first_202 = min((s.started for s in after if s.status == 202), default=None)
    report: dict[str, Any] = {
        "while_down": statuses(down),
        "after_restart": statuses(after),
        "retry_after_values": sorted({s.retry_after or "" for s in refused}),
        "problem_titles": sorted(
            {str(s.body.get("title")) for s in refused if isinstance(s.body, dict)}
        ),
        "first_202_after_restart_seconds": (
            None if first_202 is None else round(first_202 - started, 2)
        ),
        "last_503_after_restart_seconds": round(
            max((s.started for s in after if s.status == 503), default=started) - started, 2
        ),
    }
    state.figures["outage"] = report
    return report
