"""Background work as components: a task restarted when it crashes, and a periodic job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import structlog
from prometheus_client import CollectorRegistry

from stockflow_kit.observability.metrics import counter
from stockflow_kit.resilience import Backoff, Clock, Sleep

__all__ = ["BackgroundTask", "Periodic", "Work"]

Work: TypeAlias = Callable[[], Awaitable[None]]
"""An ``async def`` with no arguments: the body of a task or of one periodic run."""

_log = structlog.get_logger("stockflow_kit.lifecycle")


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])  # the task's own outcome is not ours to raise


class BackgroundTask:
    """A :class:`~stockflow_kit.lifecycle.Component` that runs ``await work()`` in a task and
    restarts it when it raises.

    ::

        relay = BackgroundTask("relay", outbox_relay.run)

    When *work* raises an :class:`Exception`, the failure is logged (``lifecycle.task_failed``,
    with the stack), counted (``lifecycle_task_restarts_total{task}``) and *work* is called
    again after ``await backoff.wait()``: full jitter, growing with each failure in a row. A
    run that lasted at least *healthy_after* seconds before failing counts as a success for
    the backoff (it is reset first), so a task that fails once a day restarts quickly every
    time while a crash loop slows down to the backoff's cap.

    When *work* returns, the task is finished (``lifecycle.task_finished``) and stays so.
    :meth:`stop` cancels it and waits for it.

    Args:
        name: The task's name in logs, metrics and readiness reasons.
        work: The coroutine function to run.
        backoff: The wait between a failure and the restart; ``Backoff(base=0.1, cap=5.0)``
            by default. Give it ``sleep=`` to test without sleeping.
        healthy_after: Seconds a run must last for its failure to reset the backoff;
            ``30.0`` by default.
        registry: Prometheus registry for the counter (the default registry when ``None``).
        clock: Monotonic seconds, for *healthy_after*; :func:`time.monotonic` by default.
    """

    def __init__(
        self,
        name: str,
        work: Work,
        *,
        backoff: Backoff | None = None,
        healthy_after: float = 30.0,
        registry: CollectorRegistry | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._name = name
        self._work = work
        self.backoff = backoff if backoff is not None else Backoff(base=0.1, cap=5.0)
        self.healthy_after = healthy_after
        self._clock = clock
        self._restarts = counter(
            "lifecycle_task_restarts",
            "Background tasks restarted after they raised.",
            ("task",),
            registry=registry,
        ).labels(name)
        self._task: asyncio.Task[None] | None = None
        self._failure: str | None = None
        self._finished = False
        self._stopped = False

    @property
    def name(self) -> str:
        """The name given."""
        return self._name

    @property
    def running(self) -> bool:
        """Whether the task is started and neither finished nor stopped."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start running *work* in a task.

        Raises:
            RuntimeError: If the task is already running.
        """
        if self.running:
            raise RuntimeError(f"the task {self._name!r} is already running")
        self._failure, self._finished, self._stopped = None, False, False
        self._task = asyncio.create_task(self._run(), name=f"lifecycle:{self._name}")

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended; idempotent."""
        task, self._task = self._task, None
        self._stopped = self._stopped or task is not None
        await _cancel(task)

    async def readiness(self) -> str | None:
        """``None`` while *work* runs; else a reason: ``"not started"``, ``"restarting after
        RuntimeError: ..."`` (waiting for the backoff), ``"finished"`` or ``"stopped"``."""
        if self._finished:
            return "finished"
        if self._task is None:
            return "stopped" if self._stopped else "not started"
        if self._task.done():
            return "not running"
        if self._failure is not None:
            return f"restarting after {self._failure}"
        return None

    async def _run(self) -> None:
        while True:
            began = self._clock()
            try:
                await self._work()
            except Exception as error:  # logged and counted, then restarted after the backoff
                if self._clock() - began >= self.healthy_after:
                    self.backoff.reset()
                self._failure = f"{type(error).__name__}: {error}"
                self._restarts.inc()
                _log.error(
                    "lifecycle.task_failed",
                    task=self._name,
                    attempt=self.backoff.attempts + 1,
                    exc_info=error,
                )
                await self.backoff.wait()
                self._failure = None
                continue
            self._finished = True
            _log.info("lifecycle.task_finished", task=self._name)
            return

    def __repr__(self) -> str:
        return f"<BackgroundTask {self._name!r} running={self.running}>"


class Periodic:
    """A :class:`~stockflow_kit.lifecycle.Component` that runs ``await job()`` every
    *interval* seconds.

    ::

        pruner = Periodic("pruner", prune_processed, interval=3600.0)

    The interval is the pause *between* runs (from the end of one to the start of the next),
    so runs never overlap. A run that raises an :class:`Exception` is logged
    (``lifecycle.job_failed``, with the stack) and counted, and the next run comes at the
    usual time: a failure never ends the loop. Every run is counted in
    ``lifecycle_periodic_runs_total{job, outcome}`` with ``outcome`` ``ok`` or ``failed``.

    Args:
        name: The job's name in logs, metrics and readiness reasons.
        job: The coroutine function of one run.
        interval: Seconds between runs.
        run_at_start: Run once right after :meth:`start` too; ``False`` by default (the
            first run is one *interval* after the start).
        registry: Prometheus registry for the counter (the default registry when ``None``).
        sleep: The async sleep between runs; :func:`asyncio.sleep` by default.

    Raises:
        ValueError: If *interval* is negative.
    """

    def __init__(
        self,
        name: str,
        job: Work,
        *,
        interval: float,
        run_at_start: bool = False,
        registry: CollectorRegistry | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self._name = name
        self._job = job
        self.interval = interval
        self.run_at_start = run_at_start
        self._sleep = sleep
        runs = counter(
            "lifecycle_periodic_runs",
            "Runs of periodic jobs, by outcome.",
            ("job", "outcome"),
            registry=registry,
        )
        self._ok, self._failed = runs.labels(name, "ok"), runs.labels(name, "failed")
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        """Runs that raised since the start."""
        self.last_error: str | None = None
        """The error of the latest run, or ``None`` if it succeeded (or none ran yet)."""

    @property
    def name(self) -> str:
        """The name given."""
        return self._name

    async def start(self) -> None:
        """Start the loop in a task (returns at once, even with *run_at_start*).

        Raises:
            RuntimeError: If the loop is already running.
        """
        if self._task is not None and not self._task.done():
            raise RuntimeError(f"the periodic job {self._name!r} is already running")
        self.failures, self.last_error = 0, None
        self._task = asyncio.create_task(self._loop(), name=f"lifecycle:{self._name}")

    async def stop(self) -> None:
        """Cancel the loop (and the run in progress, if any) and wait; idempotent."""
        task, self._task = self._task, None
        await _cancel(task)

    async def readiness(self) -> str | None:
        """``None`` while the loop runs, whatever its runs' outcomes; else a reason.

        A failing run does not make the job unready: it is retried at the next interval and
        shows in ``lifecycle_periodic_runs_total`` and :attr:`last_error`.
        """
        if self._task is None:
            return "not started"
        return "not running" if self._task.done() else None

    async def run_once(self) -> bool:
        """Run the job once now, logging and counting it; return whether it succeeded."""
        try:
            await self._job()
        except Exception as error:  # logged and counted; the loop goes on
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            self._failed.inc()
            _log.error("lifecycle.job_failed", job=self._name, exc_info=error)
            return False
        self.last_error = None
        self._ok.inc()
        return True

    async def _loop(self) -> None:
        if self.run_at_start:
            await self.run_once()
        while True:
            await self._sleep(self.interval)
            await self.run_once()

    def __repr__(self) -> str:
        return f"<Periodic {self._name!r} every {self.interval:g} s>"
