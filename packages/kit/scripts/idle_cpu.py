"""Measure the CPU an idle embedded consumer process uses (issue: idle cost of polling).

Runs, in one process, a :class:`SqliteLogBus` on a fresh file, *N* durable subscriptions each
under a :class:`Consumer` (``max_wait=0.05``, as the inventory uses) and an
:class:`OutboxRelay` on an empty SQLite outbox, publishes nothing, and prints the process's
CPU time over the window as a share of one core::

    .venv/bin/python packages/kit/scripts/idle_cpu.py --seconds 20 --consumers 2

With ``--pid`` it reads another process instead (e.g. an idle ``stockflow up``)::

    .venv/bin/python packages/kit/scripts/idle_cpu.py --seconds 20 --pid "$(pgrep -f 'stockflow up')"
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging import Consumer, Delivery, OutboxRelay, SqliteLogBus, SqliteOutbox


async def _ignore(batch: Sequence[Delivery]) -> None:
    return None


async def measure(seconds: float, consumers: int, warmup: float) -> float:
    registry = CollectorRegistry()
    with tempfile.TemporaryDirectory() as tmp:
        bus = SqliteLogBus(f"sqlite:///{Path(tmp) / 'bus.sqlite3'}", registry=registry)
        outbox_path = str(Path(tmp) / "outbox.sqlite3")
        outbox = SqliteOutbox(outbox_path)
        with sqlite3.connect(outbox_path) as conn:
            outbox.create_schema(conn)
        await bus.start()
        runners = [
            Consumer(
                await bus.subscribe(f"idle{n}.events", f"idle-{n}"),
                _ignore,
                max_wait=0.05,
                max_in_flight=2,
                registry=registry,
            )
            for n in range(consumers)
        ]
        relay = OutboxRelay(outbox, bus, registry=registry)
        tasks = [asyncio.create_task(r.run()) for r in [*runners, relay]]
        try:
            await asyncio.sleep(warmup)
            process = psutil.Process()
            before, started = process.cpu_times(), time.monotonic()
            await asyncio.sleep(seconds)
            after, elapsed = process.cpu_times(), time.monotonic() - started
        finally:
            for runner in [*runners, relay]:
                await runner.stop()
            await asyncio.gather(*tasks)
            await bus.close()
    used = (after.user - before.user) + (after.system - before.system)
    return used / elapsed


async def measure_process(pid: int, seconds: float) -> float:
    process = psutil.Process(pid)
    before, started = process.cpu_times(), time.monotonic()
    await asyncio.sleep(seconds)
    after, elapsed = process.cpu_times(), time.monotonic() - started
    return ((after.user - before.user) + (after.system - before.system)) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--pid", type=int, help="measure this process instead of the harness")
    args = parser.parse_args()
    if args.pid:
        share = asyncio.run(measure_process(args.pid, args.seconds))
        what = f"process {args.pid}"
    else:
        share = asyncio.run(measure(args.seconds, args.consumers, args.warmup))
        what = f"{args.consumers} consumers, max_wait=0.05, one outbox relay"
    print(  # noqa: T201 - the script's output
        f"idle CPU: {share * 100:.2f}% of one core over {args.seconds:.0f} s ({what})"
    )


if __name__ == "__main__":
    main()
