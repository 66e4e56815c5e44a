"""``BackgroundTask`` restarts crashed work after a jittered backoff; ``Periodic`` runs a job
every interval and survives its failures. No real sleeping: sleeps and clocks are injected."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from stockflow_kit.lifecycle import BackgroundTask, Periodic
from stockflow_kit.resilience import Backoff
from stockflow_kit.resilience.testing import ManualClock


class Top:
    """The jitter at its ceiling, so each delay is the cap of its attempt."""

    def random(self) -> float:
        return 1.0


class Gate:
    """A sleep that records each delay and waits until the test opens it."""

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


def restarts(registry: CollectorRegistry, task: str) -> float:
    return registry.get_sample_value("lifecycle_task_restarts_total", {"task": task}) or 0.0


async def test_a_crashing_task_is_logged_counted_and_restarted_after_a_growing_backoff(
    registry: CollectorRegistry,
) -> None:
    clock = ManualClock()
    calls = 0
    steady = asyncio.Event()

    async def work() -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise ConnectionError(f"lost the broker ({calls})")
        steady.set()
        await asyncio.Event().wait()

    task = BackgroundTask(
        "relay",
        work,
        backoff=Backoff(base=0.1, cap=5.0, sleep=clock.sleep, rng=Top()),
        registry=registry,
        clock=clock,
    )
    with capture_logs() as logs:
        await task.start()
        await asyncio.wait_for(steady.wait(), 2)
        ready = await task.readiness()
        await task.stop()

    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert restarts(registry, "relay") == 3
    failed = [e for e in logs if e["event"] == "lifecycle.task_failed"]
    assert [e["attempt"] for e in failed] == [1, 2, 3]
    assert all(isinstance(e["exc_info"], ConnectionError) for e in failed)
    assert ready is None
    assert await task.readiness() == "stopped"


async def test_while_waiting_to_restart_the_task_is_not_ready_and_says_why(
    registry: CollectorRegistry,
) -> None:
    gate = Gate()
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("bad row")
        await asyncio.Event().wait()

    task = BackgroundTask("relay", work, backoff=Backoff(sleep=gate.sleep), registry=registry)
    await task.start()
    await asyncio.wait_for(gate.waiting.wait(), 2)

    assert await task.readiness() == "restarting after ValueError: bad row"
    gate.open()
    for _ in range(10):
        await asyncio.sleep(0)
    assert await task.readiness() is None
    assert calls == 2
    await task.stop()


async def test_a_run_that_lasted_long_enough_resets_the_backoff(
    registry: CollectorRegistry,
) -> None:
    clock = ManualClock()
    calls = 0
    steady = asyncio.Event()

    async def work() -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            clock.advance(60.0)  # it ran a minute before failing
            raise ConnectionError("lost the broker")
        steady.set()
        await asyncio.Event().wait()

    backoff = Backoff(base=0.1, cap=5.0, sleep=clock.sleep, rng=Top())
    task = BackgroundTask(
        "relay", work, backoff=backoff, healthy_after=30.0, registry=registry, clock=clock
    )
    await task.start()
    await asyncio.wait_for(steady.wait(), 2)
    await task.stop()

    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1])


async def test_work_that_returns_finishes_the_task_and_readiness_says_so(
    registry: CollectorRegistry,
) -> None:
    async def once() -> None:
        return None

    task = BackgroundTask("migration", once, registry=registry)
    assert await task.readiness() == "not started"
    with capture_logs() as logs:
        await task.start()
        for _ in range(5):
            await asyncio.sleep(0)

    assert await task.readiness() == "finished"
    assert not task.running
    assert [e["event"] for e in logs] == ["lifecycle.task_finished"]
    assert restarts(registry, "migration") == 0
    await task.stop()


async def test_stop_cancels_the_work_and_waits_for_it(registry: CollectorRegistry) -> None:
    cleaned = asyncio.Event()
    entered = asyncio.Event()

    async def work() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    task = BackgroundTask("consumer", work, registry=registry)
    await task.start()
    await entered.wait()
    await task.stop()
    await task.stop()

    assert cleaned.is_set()
    assert not task.running


async def test_a_running_task_refuses_a_second_start(registry: CollectorRegistry) -> None:
    task = BackgroundTask("consumer", asyncio.Event().wait, registry=registry)  # type: ignore[arg-type]
    await task.start()

    with pytest.raises(RuntimeError, match="already running"):
        await task.start()
    await task.stop()


def runs(registry: CollectorRegistry, job: str, outcome: str) -> float:
    labels = {"job": job, "outcome": outcome}
    return registry.get_sample_value("lifecycle_periodic_runs_total", labels) or 0.0


async def test_a_periodic_job_runs_every_interval_and_its_failures_are_counted_not_fatal(
    registry: CollectorRegistry,
) -> None:
    clock = ManualClock()
    outcomes = iter([None, OSError("disk full"), None, OSError("disk full"), None])
    done = asyncio.Event()
    ran_at: list[float] = []

    async def prune() -> None:
        ran_at.append(clock())
        outcome = next(outcomes, None)
        if len(ran_at) == 5:
            done.set()
        if outcome is not None:
            raise outcome

    pruner = Periodic("pruner", prune, interval=3600.0, registry=registry, sleep=clock.sleep)
    with capture_logs() as logs:
        await pruner.start()
        await asyncio.wait_for(done.wait(), 2)
        ready = await pruner.readiness()
        await pruner.stop()

    assert ran_at[:5] == [3600.0, 7200.0, 10800.0, 14400.0, 18000.0]
    assert runs(registry, "pruner", "failed") == 2
    assert runs(registry, "pruner", "ok") >= 3
    assert pruner.failures == 2
    failed = [e for e in logs if e["event"] == "lifecycle.job_failed"]
    assert len(failed) == 2
    assert all(isinstance(e["exc_info"], OSError) for e in failed)
    assert ready is None


async def test_run_at_start_runs_the_job_before_the_first_interval(
    registry: CollectorRegistry,
) -> None:
    clock = ManualClock()
    ran_at: list[float] = []
    twice = asyncio.Event()

    async def job() -> None:
        ran_at.append(clock())
        if len(ran_at) == 2:
            twice.set()

    periodic = Periodic(
        "warm", job, interval=10.0, run_at_start=True, registry=registry, sleep=clock.sleep
    )
    await periodic.start()
    await asyncio.wait_for(twice.wait(), 2)
    await periodic.stop()

    assert ran_at[:2] == [0.0, 10.0]


async def test_the_last_error_is_kept_until_a_run_succeeds(registry: CollectorRegistry) -> None:
    results = [RuntimeError("locked"), None]

    async def job() -> None:
        result = results.pop(0)
        if result is not None:
            raise result

    periodic = Periodic("vacuum", job, interval=1.0, registry=registry)

    assert await periodic.run_once() is False
    assert periodic.last_error == "RuntimeError: locked"
    assert await periodic.run_once() is True
    assert periodic.last_error is None
    assert await periodic.readiness() == "not started"


def test_a_negative_interval_is_refused() -> None:
    async def job() -> None:
        return None

    with pytest.raises(ValueError, match="interval"):
        Periodic("bad", job, interval=-1.0)
