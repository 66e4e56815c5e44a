"""PostgreSQL and NATS restarted (cleanly and as crashes) while a real ``stockflow serve
inventory`` process consumes: the worker rides it out and every command is applied once.

The servers are private (``private_servers.py``): the shared ones are never touched. The
commands go out in waves, one per fault. Each wave is published while the worker is paused
(SIGSTOP), and its fault strikes once the worker has handled a random part of it, so the
worker is mid-batch with a backlog waiting. The worker is never restarted by the test: it must
survive every fault, with the default ``max_deliver`` (5), so an outage must not burn through
redeliveries into the dead letters. While PostgreSQL is down its readiness must turn 503.
Afterwards: every command applied exactly once, the relay caught up, ``stockflow audit`` clean.
"""

from __future__ import annotations

import asyncio
import functools
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import pytest
import structlog
from tests.inventory.crash.private_servers import PrivateNats, PrivatePostgres
from tests.inventory.crash.worker_process import (
    STOCKFLOW,
    Worker,
    all_processed,
    assert_exactly_once,
    eventually,
    handled,
    make_workload,
    until,
)

from stockflow.contracts.inventory_commands import COMMANDS_TOPIC
from stockflow.inventory.adapters.event_store.postgres import PostgresEventStore
from stockflow.inventory.service_layer.relay import PUBLISHED_CHECKPOINT
from stockflow_kit.messaging import Bus, Envelope, MessagingError, make_bus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_log = structlog.get_logger("tests.crash")


@dataclass(frozen=True)
class Fault:
    """Stop one server (as ``pg_ctl -m <postgres_mode>`` or with ``nats_signal``), then
    start it again on the same port and data."""

    name: str
    postgres_mode: Literal["fast", "immediate"] | None = None
    nats_signal: signal.Signals = signal.SIGTERM

    def stop(self, postgres: PrivatePostgres, nats: PrivateNats) -> None:
        if self.postgres_mode is not None:
            postgres.stop(self.postgres_mode)
        else:
            nats.stop(self.nats_signal)

    def start(self, postgres: PrivatePostgres, nats: PrivateNats) -> None:
        if self.postgres_mode is not None:
            postgres.start()
        else:
            nats.start()


FAULTS = (
    Fault("NATS stopped (SIGTERM)", nats_signal=signal.SIGTERM),
    Fault("PostgreSQL stopped (pg_ctl stop -m fast)", postgres_mode="fast"),
    Fault("PostgreSQL crashed (pg_ctl stop -m immediate)", postgres_mode="immediate"),
    Fault("NATS killed (SIGKILL)", nats_signal=signal.SIGKILL),
)


@asynccontextmanager
async def opened_store(url: str, schema: str) -> AsyncIterator[PostgresEventStore]:
    store = PostgresEventStore(url, schema=schema)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def publish_patiently(bus: Bus, envelopes: Sequence[Envelope], within: float = 20) -> None:
    """Publish, retrying while the bus reconnects (safe: the broker drops known ids)."""
    deadline = time.monotonic() + within
    for start in range(0, len(envelopes), 500):
        while True:
            try:
                await bus.publish(COMMANDS_TOPIC, envelopes[start : start + 500])
                break
            except MessagingError:
                assert time.monotonic() < deadline, "could not publish after a NATS restart"
                await asyncio.sleep(0.1)


async def readiness(worker: Worker) -> int:
    async with httpx.AsyncClient() as client:
        try:
            response = await client.get(f"http://127.0.0.1:{worker.port}/readyz", timeout=5)
        except httpx.TransportError:
            return 0
        return response.status_code


async def run_audit(url: str, schema: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        STOCKFLOW,
        "audit",
        "--event-store-url",
        url,
        "--schema",
        schema,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return await process.wait(), output.decode(errors="replace")


async def test_postgres_and_nats_restarted_under_a_consuming_worker_lose_and_repeat_nothing(
    private_postgres: PrivatePostgres, private_nats: PrivateNats, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    schema = f"inv_{run}"
    env = {
        "INVENTORY_EVENT_STORE_URL": private_postgres.url,
        "INVENTORY_EVENT_STORE_SCHEMA": schema,
        "BUS_URL": f"{private_nats.url}?prefix=t{run}",
        "INVENTORY_ACK_WAIT": "3",
        "INVENTORY_MAX_DELIVER": "5",
        "INVENTORY_BATCH_SIZE": "100",
    }
    workload = make_workload(4000, seed=41)
    waves = [workload.commands[i :: len(FAULTS)] for i in range(len(FAULTS))]
    worker = Worker(env, tmp_path / "worker.log")
    bus = make_bus(env["BUS_URL"], name="crash-test")
    rng = random.Random(17)
    started = time.monotonic()
    try:
        worker.start()
        await worker.wait_ready()
        process = worker.process
        assert process is not None
        await bus.start()
        await publish_patiently(bus, workload.seeds)
        async with opened_store(private_postgres.url, schema) as store:
            await eventually(lambda: all_processed(store, [e.id for e in workload.seeds]))

        published = len(workload.seeds)
        backlogs: list[float] = []
        for fault, wave in zip(FAULTS, waves, strict=True):
            # Paused while its wave is published, so the fault meets a backlog; it strikes
            # once the worker is seen consuming the wave, after a random part of it.
            process.send_signal(signal.SIGSTOP)
            try:
                await publish_patiently(bus, wave)
            finally:
                process.send_signal(signal.SIGCONT)
            strike_at = published + rng.randint(1, len(wave) // 2)
            published += len(wave)
            consuming = await until(functools.partial(handled, worker, strike_at), within=30)
            assert consuming, f"the worker did not consume before {fault.name}"
            backlogs.append(published - await worker.metric("inventory_commands_total"))
            await asyncio.to_thread(fault.stop, private_postgres, private_nats)
            if fault.postgres_mode is not None:
                went_unready = await until(lambda: _status_is(readiness(worker), 503), within=10)
                assert went_unready, "the worker stayed ready while PostgreSQL was down"
            await asyncio.sleep(rng.uniform(0.2, 0.8))
            await asyncio.to_thread(fault.start, private_postgres, private_nats)
            assert process.poll() is None, f"the worker died after: {fault.name}"
            _log.info("crash_test.fault", fault=fault.name, backlog=backlogs[-1])
        assert any(backlogs), "no fault met the worker with commands still waiting"
        await worker.wait_ready(within=30)

        async with opened_store(private_postgres.url, schema) as store:
            ids = [e.id for e in workload.commands]
            await eventually(lambda: all_processed(store, ids), within=40)
            last = await store.projection_checkpoint()  # the position of the last event

            async def relay_caught_up() -> bool:
                return await store.checkpoint(PUBLISHED_CHECKPOINT) >= last

            # The relay (the outbox) must have survived the outages too.
            await eventually(relay_caught_up, within=20)
            assert process.poll() is None, "the worker died"
            worker.terminate_gracefully()
            await assert_exactly_once(store, workload)
        code, report = await run_audit(private_postgres.url, schema)
        assert code == 0, report
        _log.info("crash_test.done", seconds=round(time.monotonic() - started, 1))
    finally:
        worker.kill()
        await bus.close()


async def _status_is(status: Awaitable[int], expected: int) -> bool:
    return await status == expected
