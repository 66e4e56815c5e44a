"""``Supervisor`` keeps real child processes alive and stops them all in reverse order."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from stockflow_kit.lifecycle import ProcessExitedError, ServiceProcess, Supervisor
from stockflow_kit.resilience import Backoff

Spawn: TypeAlias = Callable[..., ServiceProcess]  # the ``child`` fixture (conftest.py)


class Top:
    def random(self) -> float:
        return 1.0


class Gate:
    """A backoff sleep that records each delay and waits until the test opens it."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.waiting = asyncio.Event()
        self._open = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.waiting.set()
        await self._open.wait()
        self._open.clear()

    def open(self) -> None:
        self.waiting.clear()
        self._open.set()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_a_process_that_dies_is_logged_counted_and_restarted_after_its_backoff(
    child: Spawn, registry: CollectorRegistry
) -> None:
    gate = Gate()
    a, b = child("a"), child("b")
    supervisor = Supervisor(
        [a, b],
        backoff=lambda: Backoff(base=0.5, cap=10.0, sleep=gate.sleep, rng=Top()),
        registry=registry,
        poll_interval=0.02,
    )
    await supervisor.start()
    try:
        assert await supervisor.readiness() is None
        first = b.pid
        with capture_logs() as logs:
            b.send_signal(signal.SIGKILL)
            await asyncio.wait_for(gate.waiting.wait(), 10)
            assert await supervisor.readiness() == f"b: exited with {-signal.SIGKILL}"
            gate.open()

            async def restarted() -> bool:
                return b.alive and await supervisor.readiness() is None

            await eventually(restarted)
        assert b.pid != first
        assert a.alive
        assert gate.delays == [0.5]
        died = [e for e in logs if e["event"] == "lifecycle.process_died"]
        assert [(e["process"], e["returncode"]) for e in died] == [("b", -signal.SIGKILL)]
        restarts = registry.get_sample_value("lifecycle_process_restarts_total", {"process": "b"})
        assert restarts == 1
    finally:
        await supervisor.stop()
    assert not a.alive
    assert not b.alive


async def test_stop_terminates_every_process_in_reverse_order(
    child: Spawn, registry: CollectorRegistry
) -> None:
    processes = [child(name) for name in ("a", "b", "c")]
    supervisor = Supervisor(processes, registry=registry)
    await supervisor.start()

    with capture_logs() as logs:
        await supervisor.stop()
        await supervisor.stop()

    stopped = [
        (e["process"], e["returncode"]) for e in logs if e["event"] == "lifecycle.process_stopped"
    ]
    assert stopped == [("c", 0), ("b", 0), ("a", 0)]
    assert not any(p.alive for p in processes)
    assert await supervisor.readiness() == "not started"


async def test_run_supervises_until_stop_is_called(
    child: Spawn, registry: CollectorRegistry
) -> None:
    a = child("a")
    supervisor = Supervisor([a], registry=registry)
    running = asyncio.create_task(supervisor.run())
    await eventually(started(supervisor))

    await supervisor.stop()
    await asyncio.wait_for(running, 10)

    assert not a.alive


async def test_wait_started_returns_once_every_process_is_ready(
    child: Spawn, registry: CollectorRegistry
) -> None:
    processes = [child("a"), child("b")]
    supervisor = Supervisor(processes, registry=registry)
    waiting = asyncio.create_task(supervisor.wait_started())
    running = asyncio.create_task(supervisor.run())

    await asyncio.wait_for(waiting, 30)

    assert all(p.alive for p in processes)
    await supervisor.stop()
    await asyncio.wait_for(running, 10)


async def test_cancelling_run_stops_the_processes(
    child: Spawn, registry: CollectorRegistry
) -> None:
    a = child("a")
    supervisor = Supervisor([a], registry=registry)
    running = asyncio.create_task(supervisor.run())
    await eventually(started(supervisor))

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    assert not a.alive


async def test_a_failed_start_stops_the_processes_already_started(
    child: Spawn, registry: CollectorRegistry
) -> None:
    a = child("a")
    broken = child("broken", READY_AFTER="600", EXIT_AFTER="0.1", EXIT_CODE="2")
    never = child("never")
    supervisor = Supervisor([a, broken, never], registry=registry)

    with pytest.raises(ProcessExitedError, match="broken exited with 2"):
        await supervisor.start()

    assert a.returncode == 0
    assert never.pid is None
    assert not supervisor.started


def test_process_names_must_be_unique(child: Spawn) -> None:
    with pytest.raises(ValueError, match="unique"):
        Supervisor([child("a"), child("a")])


def started(supervisor: Supervisor) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return supervisor.started

    return check


async def test_together_starts_a_run_of_processes_at_once_and_the_next_after_them(
    child: Spawn, registry: CollectorRegistry
) -> None:
    slow = [child(name, READY_AFTER="3") for name in ("a", "b", "c")]
    last = child("last")
    supervisor = Supervisor([*slow, last], together={"a", "b", "c"}, registry=registry)
    began = asyncio.get_running_loop().time()
    starting = asyncio.create_task(supervisor.start())

    async def all_three_spawned() -> bool:
        return all(p.pid is not None for p in slow)

    await eventually(all_three_spawned)
    assert last.pid is None  # the next step waits until the three are ready
    await starting
    took = asyncio.get_running_loop().time() - began
    try:
        assert all(p.alive for p in [*slow, last])
        assert await supervisor.readiness() is None
        # One after the other it takes 3 x 3 s at least; together, about one of them.
        assert 3.0 <= took < 7.0, took
    finally:
        await supervisor.stop()


async def test_together_a_failed_start_stops_every_process(
    child: Spawn, registry: CollectorRegistry
) -> None:
    a = child("a")
    broken = child("broken", READY_AFTER="600", EXIT_AFTER="0.1", EXIT_CODE="2")
    c = child("c", READY_AFTER="600")
    never = child("never")
    supervisor = Supervisor([a, broken, c, never], together={"a", "broken", "c"}, registry=registry)

    with pytest.raises(ProcessExitedError, match="broken exited with 2"):
        await supervisor.start()

    assert not a.alive
    assert not c.alive
    assert never.pid is None
    assert not supervisor.started
