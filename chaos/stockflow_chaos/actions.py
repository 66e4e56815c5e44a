"""Actions: the faults (signals to a service's process, the fault proxy), the loads that run
through them, and the figures taken from them."""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from typing import Any

import httpx

from stockflow_chaos import state
from stockflow_chaos.context import Configuration, described, metric_sum, scrape, system
from stockflow_chaos.load import Load, Sample, summary, timed
from stockflow_kit.resilience import Backoff
from stockflow_kit.testing import PASS_THROUGH, BlackHole, Fault, Latency, Reset


def signal_service(configuration: Configuration, service: str, signal_name: str) -> int:
    """Send *signal_name* (``SIGKILL``, ``SIGSTOP``, ``SIGCONT``) to the ``stockflow serve
    <service>`` process; return its pid (kept, with the time, for the probes)."""
    process = system(configuration).child(service)
    state.marks[f"pid:{service}"] = process.pid
    state.marks[f"{signal_name}:{service}"] = time.monotonic()
    process.send_signal(signal.Signals[signal_name])
    pid: int = process.pid
    return pid


def continue_service(configuration: Configuration, service: str) -> str:
    """SIGCONT *service* (a rollback: harmless when it was not stopped)."""
    try:
        signal_service(configuration, service, "SIGCONT")
    except AssertionError:
        return f"{service}: no process"
    return f"{service}: continued"


def snapshot_metrics(configuration: Configuration, label: str, services: list[str]) -> str:
    """Remember the ``/metrics`` samples of *services* now, as *label* (for deltas later)."""
    target = system(configuration)
    state.marks[f"at:{label}"] = time.monotonic()
    for service in services:
        state.figures.setdefault("_snapshots", {})[f"{label}:{service}"] = scrape(
            f"{target.url(service)}/metrics"
        )
    return label


def _delta(configuration: Configuration, label: str, service: str) -> Any:
    """``(now - then)`` for one metric sum, as a function of (name, labels)."""
    then = state.figures["_snapshots"][f"{label}:{service}"]
    now = scrape(f"{system(configuration).url(service)}/metrics")

    def delta(metric: str, /, **labels: Any) -> float:
        return metric_sum(now, metric, **labels) - metric_sum(then, metric, **labels)

    return delta


def client_metrics(
    configuration: Configuration, since: str, downstream: str, route: str
) -> dict[str, Any]:
    """Edge's calls on *route* since snapshot *since*, and its client's attempts to
    *downstream* by outcome (``http_client_requests_total``, one sample per attempt, refusals
    by the breaker or the bulkhead included): the retry amplification (attempts sent / calls
    that made an attempt), the downstream's load ratio (attempts sent / all calls: below 1
    when the breaker sheds) and the retry budget (``retry_budget_denied_total``; retries
    allowed: 20 % of calls plus 10/s over the window and the 10 s before it). Kept in the
    figures as ``client``."""
    delta = _delta(configuration, since, "edge")
    elapsed = time.monotonic() - state.marks[f"at:{since}"]
    calls = delta("http_requests_total", route=route)
    outcomes = {
        error or "answered": delta("http_client_requests_total", downstream=downstream, error=error)
        for error in (
            "",
            "timeout",
            "connect_error",
            "transport_error",
            "circuit_open",
            "bulkhead_full",
        )
    }
    refused = outcomes["circuit_open"] + outcomes["bulkhead_full"]
    sent = sum(outcomes.values()) - refused
    went_out = calls - refused  # calls that made at least one attempt
    report = {
        "calls": calls,
        "calls_refused_by_breaker_or_bulkhead": refused,
        "attempts_sent": sent,
        "attempts_by_outcome": outcomes,
        "retries": max(0.0, sent - went_out),
        "retry_amplification": round(sent / went_out, 3) if went_out else 0.0,
        "downstream_load_ratio": round(sent / calls, 3) if calls else 0.0,
        "budget_denied": delta("retry_budget_denied_total", name=downstream),
        "budget_allowance": round(0.2 * calls + 10.0 * (elapsed + 10.0), 1),
        "breaker_opened": delta(
            "circuit_breaker_transitions_total", name=downstream, to_state="open"
        ),
        "breaker_closed": delta(
            "circuit_breaker_transitions_total", name=downstream, to_state="closed"
        ),
        "window_seconds": round(elapsed, 2),
    }
    state.figures["client"] = report
    return report


def served_requests(configuration: Configuration, since: str, service: str) -> dict[str, float]:
    """*service*'s RED count since snapshot *since*: ``http_requests_total`` by status
    class (what it answered while it was paused and after). Kept as ``served:<service>``."""
    delta = _delta(configuration, since, service)
    report = {
        f"{code}xx": sum(
            delta("http_requests_total", status=f"{code}{rest:02d}") for rest in range(100)
        )
        for code in (2, 4, 5)
    }
    state.figures[f"served:{service}"] = report
    return report


# ---------------------------------------------------------------- loads


def start_order_load(
    configuration: Configuration, workers: int = 6, skus: int = 3, stock: int = 400
) -> list[str]:
    """Receive *stock* units of *skus* new SKUs, then start *workers* customers placing
    one-line orders through edge (``POST /orders`` with an Idempotency-Key) until stopped."""
    target = system(configuration)
    names = [f"CHAOS-{uuid.uuid4().hex[:8]}" for _ in range(skus)]
    staff = {**target.auth("chaos-staff", "staff")}
    with httpx.Client(timeout=10, trust_env=False) as http:
        for sku in names:
            answer = http.post(
                f"{target.url()}/inventory/{sku}/receipts",
                json={"qty": stock, "reference": "chaos"},
                headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert answer.status_code == 201, answer.text
    auths = [target.auth(f"chaos-buyer-{index}") for index in range(workers)]

    async def place(http: httpx.AsyncClient, index: int) -> Sample:
        headers = {**auths[index], "Idempotency-Key": uuid.uuid4().hex}
        lines = [{"sku": names[index % skus], "qty": 1}]
        return await timed(
            http.post(f"{target.url()}/orders", json={"lines": lines}, headers=headers)
        )

    state.figures["_skus"] = names
    state.loads["orders"] = Load("orders", place, workers=workers, pause=0.02)
    state.loads["orders"].start()
    return names


def stop_order_load_and_settle(
    configuration: Configuration, within: float = 60.0
) -> dict[str, Any]:
    """Stop the order load and follow every order answered 202 until it leaves PENDING (or
    *within* seconds pass): how many ended CONFIRMED, REJECTED, or neither (lost)."""
    target = system(configuration)
    samples = state.loads["orders"].stop()
    accepted = [s.body["id"] for s in samples if s.status == 202]
    staff = target.auth("chaos-staff", "staff")
    deadline = time.monotonic() + within
    rng = random.Random(described(configuration).get("seed", 0))

    async def settle(http: httpx.AsyncClient, gate: asyncio.Semaphore, order_id: str) -> str:
        backoff = Backoff(base=0.05, cap=1.0, rng=rng)
        async with gate:
            while True:
                try:
                    answer = await http.get(f"{target.url()}/orders/{order_id}", headers=staff)
                    status = answer.json()["status"] if answer.status_code == 200 else "UNKNOWN"
                except httpx.HTTPError:
                    status = "UNKNOWN"
                if status not in ("PENDING", "UNKNOWN") or time.monotonic() > deadline:
                    return status
                await backoff.wait()

    async def settle_all() -> list[str]:
        gate = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            return await asyncio.gather(*(settle(http, gate, o) for o in accepted))

    ends = asyncio.run(settle_all())
    counts = {status: ends.count(status) for status in set(ends)}
    report = {
        "placed": len(samples),
        "accepted": len(accepted),
        "confirmed": counts.get("CONFIRMED", 0),
        "rejected": counts.get("REJECTED", 0),
        "lost": len(accepted) - counts.get("CONFIRMED", 0) - counts.get("REJECTED", 0),
        "ends": counts,
        "load": summary(samples),
    }
    state.figures["orders"] = report
    return report


def start_me_load(configuration: Configuration, user: str, workers: int = 4) -> str:
    """Give *user* a profile (``PUT /me``: edge caches it), then start *workers* clients
    reading ``GET /me`` through edge until stopped."""
    target = system(configuration)
    headers = target.auth(user)
    answer = httpx.put(
        f"{target.url()}/me",
        json={"name": "Chaos", "email": "chaos@example.com"},
        headers=headers,
        timeout=10,
        trust_env=False,
    )
    assert answer.status_code == 200, answer.text

    async def read(http: httpx.AsyncClient, index: int) -> Sample:
        del index
        return await timed(http.get(f"{target.url()}/me", headers=headers))

    state.loads["me"] = Load("me", read, workers=workers, pause=0.05)
    state.loads["me"].start()
    return user


def start_stock_load(configuration: Configuration, sku: str = "SKU-1", workers: int = 4) -> str:
    """Start *workers* clients reading ``GET /inventory/{sku}`` through edge until stopped."""
    target = system(configuration)
    headers = target.auth("chaos-reader")

    async def read(http: httpx.AsyncClient, index: int) -> Sample:
        del index
        return await timed(http.get(f"{target.url()}/inventory/{sku}", headers=headers))

    state.loads["stock"] = Load("stock", read, workers=workers, pause=0.02)
    state.loads["stock"].start()
    return sku


def stop_load(
    configuration: Configuration, name: str, deadline: float | None = None
) -> dict[str, Any]:
    """Stop load *name*; its summary (statuses, 5xx, latencies, answers slower than
    *deadline*, degraded answers) goes to the figures as *name*."""
    del configuration
    samples = state.loads[name].stop()
    report = summary(samples, deadline=deadline)
    bodies = [s.body for s in samples if s.status == 200 and isinstance(s.body, dict)]
    report["degraded"] = sum(1 for body in bodies if body.get("degraded"))
    state.figures[name] = report
    return report


def stop_every_load(configuration: Configuration) -> list[str]:
    """Stop whatever load still runs (a rollback)."""
    del configuration
    for load in state.loads.values():
        load.stop()
    return sorted(state.loads)


# ---------------------------------------------------------------- the fault proxy

_FAULTS: dict[str, Fault] = {
    "pass_through": PASS_THROUGH,
    "reset": Reset(),
    "black_hole": BlackHole(),
}


def set_fault(
    configuration: Configuration, fault: str, delay: float = 0.0, jitter: float = 0.0
) -> dict[str, Any]:
    """Switch the run's fault proxy to *fault*: ``pass_through``, ``latency`` (*delay* ±
    *jitter* seconds per answer), ``reset`` or ``black_hole``; return its counts so far."""
    del configuration
    chosen = Latency(delay, jitter=jitter) if fault == "latency" else _FAULTS[fault]
    assert state.proxy is not None, "no fault proxy: the experiment needs the proxy control"
    state.proxy.set_fault(chosen)
    counts: dict[str, Any] = state.proxy.counts()
    state.figures["proxy"] = counts
    return counts


def skipped_duplicates(configuration: Configuration, since: str) -> dict[str, float]:
    """The duplicates the consumers recognised since snapshot *since*: the inventory writer's
    ``inventory_commands_total{outcome="duplicate"}`` (processed message ids) and orders'
    inbox, ``messaging_messages_total{outcome="duplicate_skipped"}``. Kept as
    ``duplicates_skipped``."""
    report = {
        "inventory": _delta(configuration, since, "inventory")(
            "inventory_commands_total", outcome="duplicate"
        ),
        "orders": _delta(configuration, since, "orders")(
            "messaging_messages_total", outcome="duplicate_skipped"
        ),
    }
    state.figures["duplicates_skipped"] = report
    return report
