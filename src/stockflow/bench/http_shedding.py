"""``stockflow bench http --shedding-sweep``: what in-flight limit keeps a write route's p99 sane.

For each limit, a fresh service (``stockflow serve``, as in :mod:`stockflow.bench.http`)
started with the limit in its environment (``<SERVICE>_MAX_IN_FLIGHT``, the setting that
feeds :func:`stockflow_kit.http.instrument`'s ``max_in_flight``) is driven by many
concurrent closed-loop writers (1,000 by default) with the built-in client, which splits
latency by status: the p99 of the admitted (2xx) requests is what the limit protects, and
the share of 503s is what it costs. "none" runs with a limit no load reaches. A limit below
the number of writers that sheds nothing is reported as a warning: the service does not
read the setting (yet).

The writers honour ``Retry-After`` by default (a shed writer waits the second it is told
to), as the kit's :class:`~stockflow_kit.http.ResilientClient` does; writers that retry
at once turn every shed into another request and measure a 503 storm instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import msgspec

from stockflow.bench.http import serve_service
from stockflow.bench.http_load import LoadResult, run_load

__all__ = ["NO_LIMIT", "SheddingRow", "format_shedding_table", "run_shedding_sweep"]

NO_LIMIT: Final = 1_000_000
"""The limit given for a "none" row: more requests than any run keeps in flight."""


class SheddingRow(msgspec.Struct, frozen=True, kw_only=True):
    """One limit under load.

    Args:
        max_in_flight: The limit, ``None`` for none.
        connections: Concurrent closed-loop clients.
        result: What the client measured (all statuses; ``ok_p99_ms`` for 2xx only).
        goodput_per_s: Admitted (2xx) responses per second.
        shed_share: The share of responses that were not 2xx (the 503s).
    """

    max_in_flight: int | None
    connections: int
    result: LoadResult
    goodput_per_s: float
    shed_share: float


def run_shedding_sweep(
    limits: Sequence[int | None],
    *,
    service: str = "inventory",
    route_name: str = "write",
    connections: int = 1000,
    duration: float = 6.0,
    warmup: float = 1.0,
    service_env: Mapping[str, str] | None = None,
    honour_retry_after: bool = True,
    progress: Callable[[str], None] = print,
) -> list[SheddingRow]:
    """Measure *route_name* of *service* once per limit in *limits*, each on a fresh service."""
    rows: list[SheddingRow] = []
    for limit in limits:
        with tempfile.TemporaryDirectory(prefix="stockflow-bench-shed-") as tmp:
            env = {
                **(service_env or {}),
                f"{service.upper()}_MAX_IN_FLIGHT": str(NO_LIMIT if limit is None else limit),
            }
            with serve_service(service, Path(tmp) / service, env) as (_, routes):
                [target] = [t for r, t in routes if r.name == route_name]
                run_load(target, connections=connections, duration=warmup, tool="builtin")
                result = run_load(
                    target,
                    connections=connections,
                    duration=duration,
                    tool="builtin",
                    honour_retry_after=honour_retry_after,
                )
        ok = result.requests - result.non_2xx
        row = SheddingRow(
            max_in_flight=limit,
            connections=connections,
            result=result,
            goodput_per_s=ok / result.seconds if result.seconds else 0.0,
            shed_share=result.non_2xx / result.requests if result.requests else 0.0,
        )
        progress(_line(row))
        if limit is not None and limit < connections and result.non_2xx == 0:
            progress(
                f"warning: nothing was shed at max_in_flight={limit} with {connections} writers: "
                f"does {service} read {service.upper()}_MAX_IN_FLIGHT?"
            )
        rows.append(row)
    return rows


def format_shedding_table(rows: Sequence[SheddingRow]) -> str:
    """The sweep as a fixed-width table."""
    header = f"{'max_in_flight':>13} {'conns':>6} {'req/s':>8} {'2xx/s':>8} {'shed':>6} "
    header += f"{'p50 ms':>8} {'p99 ms':>8} {'2xx p99 ms':>10} {'errors':>6}"
    return "\n".join([header, "-" * len(header), *(_line(row) for row in rows)])


def _line(row: SheddingRow) -> str:
    r = row.result
    limit = "none" if row.max_in_flight is None else str(row.max_in_flight)
    ok_p99 = "" if r.ok_p99_ms is None else f"{r.ok_p99_ms:.1f}"
    return (
        f"{limit:>13} {row.connections:>6} {r.requests_per_s:>8,.0f} {row.goodput_per_s:>8,.0f} "
        f"{row.shed_share:>6.1%} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {ok_p99:>10} {r.errors:>6}"
    )
