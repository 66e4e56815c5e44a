"""The peers of ``stockflow bench events``: the same envelopes through the eventsourcing
library (:mod:`stockflow.bench.eventsourcing_app`), saving 100 aggregates per call and 1 per
call, and through the conventional design (:mod:`stockflow.bench.conventional`), each on fresh
storage of the backend's kind (SQLite file or PostgreSQL database).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from stockflow.bench.backends import BenchBackend
from stockflow.bench.figures import EventsFigures
from stockflow.bench.workload import Workload

__all__ = [
    "ES_ONE_PER_SAVE_TIME_CAP",
    "ES_TIME_CAP",
    "compare_conventional",
    "compare_eventsourcing",
]

ES_TIME_CAP: Final = 60.0
"""Seconds the 100-per-save run may take (the rate covers what was done by then)."""
ES_ONE_PER_SAVE_TIME_CAP: Final = 30.0
"""Seconds the 1-per-save run may take: one transaction per aggregate is slow."""


async def compare_eventsourcing(
    backend: BenchBackend,
    workload: Workload,
    figures: EventsFigures,
    say: Callable[[str], None],
) -> EventsFigures:
    """Add both eventsourcing runs (100 and 1 aggregates per save) to *figures*."""
    batched = await _run_eventsourcing(backend, workload, 100, ES_TIME_CAP, say)
    one = await _run_eventsourcing(backend, workload, 1, ES_ONE_PER_SAVE_TIME_CAP, say)
    rate = batched["events_per_s"]
    return msgspec.structs.replace(
        figures,
        eventsourcing=batched,
        ratio_vs_eventsourcing=round(figures.events_per_s / rate, 2) if rate else None,
        eventsourcing_one_per_save=one
        | {
            "ratio_ours_vs_eventsourcing": (
                round(figures.events_per_s / one["events_per_s"], 2)
                if one["events_per_s"]
                else None
            )
        },
    )


async def _run_eventsourcing(
    backend: BenchBackend,
    workload: Workload,
    save_batch: int,
    time_cap: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The workload through the eventsourcing library on fresh storage of the same kind."""
    from stockflow.bench.eventsourcing_app import run_eventsourcing

    env: dict[str, Any]
    if backend.name == "embedded":
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(backend.workdir / f"eventsourcing-{save_batch}.sqlite3"),
        }
    else:
        parts = urlsplit(backend.admin_url)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": await backend.new_database("stockflow_bench_es"),
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": parts.username or "postgres",
            "POSTGRES_PASSWORD": parts.password or "",
        }
    per_save = "aggregate" if save_batch == 1 else "aggregates"
    say(f"eventsourcing ({env['PERSISTENCE_MODULE']}), {save_batch} {per_save} per save ...")
    result = await asyncio.to_thread(
        run_eventsourcing,
        workload.envelopes,
        env,
        save_batch=save_batch,
        time_cap=time_cap,
        progress=say,
    )
    return {
        "persistence": env["PERSISTENCE_MODULE"],
        "save_batch": result.save_batch,
        "events": result.events,
        "commands": result.commands,
        "seconds": round(result.seconds, 3),
        "events_per_s": round(result.events_per_s, 1),
        "capped_at_seconds": time_cap if result.capped else None,
        "final_stock_matches_reference": (
            not result.capped and result.stock == workload.model.stock()
        ),
    }


async def compare_conventional(
    backend: BenchBackend,
    workload: Workload,
    figures: EventsFigures,
    say: Callable[[str], None],
) -> EventsFigures:
    """Add the conventional design's run (and its audit) to *figures*."""
    from stockflow.bench.conventional import CONVENTIONAL_TIME_CAP, run_conventional

    if backend.name == "embedded":
        url = f"sqlite:///{backend.workdir / 'conventional.sqlite3'}"
    else:
        name = await backend.new_database("stockflow_bench_conv")
        url = (
            urlsplit(backend.admin_url)
            ._replace(scheme="postgresql+psycopg", path=f"/{name}")
            .geturl()
        )
    say(f"conventional design ({url.split(':', 1)[0]}), one transaction per command ...")
    result = await asyncio.to_thread(
        run_conventional, workload.envelopes, url, time_cap=CONVENTIONAL_TIME_CAP, progress=say
    )
    rate = result.events_per_s
    conventional = {
        "events": result.events,
        "commands": result.commands,
        "transactions": result.transactions,
        "seconds": round(result.seconds, 3),
        "events_per_s": round(rate, 1),
        "capped_at_seconds": CONVENTIONAL_TIME_CAP if result.capped else None,
        "audit_violations": result.violations,
        "final_stock_matches_reference": (
            not result.capped and result.stock == workload.model.stock()
        ),
    }
    return msgspec.structs.replace(
        figures,
        conventional=conventional,
        ratio_vs_conventional=round(figures.events_per_s / rate, 2) if rate else None,
    )
