"""``Supervisor``: keep several ``ServiceProcess`` alive, restarting the ones that die."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence

import structlog
from prometheus_client import CollectorRegistry

from stockflow_kit.observability.metrics import counter
from stockflow_kit.resilience import Backoff, Clock

from ._errors import LifecycleError
from ._process import ServiceProcess

__all__ = ["Supervisor"]

_log = structlog.get_logger("stockflow_kit.lifecycle")


class Supervisor:
    """Starts processes in order, restarts any that dies, and stops them all in reverse.

    ::

        supervisor = Supervisor([inventory, orders, edge])
        await supervisor.run()  # until supervisor.stop() is called (or run() is cancelled)

    A process that exits while the supervisor runs is logged (``lifecycle.process_died``, with
    its exit code), counted (``lifecycle_process_restarts_total{process}``) and started again
    after its own jittered :class:`~stockflow_kit.resilience.Backoff`; the restart waits until
    it is ready again. A process that stays up *healthy_after* seconds resets its backoff. A
    restart that fails (the program cannot run, or is not ready in time: then it is killed)
    counts as another death. The supervisor is a :class:`~stockflow_kit.lifecycle.Component`.

    Args:
        processes: Started (each waited for until ready) in this order; stopped in reverse.
        together: Names of processes started at once, then waited for until all are ready
            (a run of them next to each other in *processes* is one such step), instead of
            one after the other: for processes that need none of the others to start (a
            cold start of N Python services costs about the slowest one, not the sum).
        backoff: Makes the backoff of each process; ``Backoff(base=0.5, cap=10.0)`` by default.
        name: The supervisor's name as a component; ``"supervisor"`` by default.
        ready_within: Seconds each (re)start may take to become ready; ``30.0`` by default.
        stop_grace: Seconds between ``SIGTERM`` and ``SIGKILL`` at :meth:`stop`; ``20.0``.
        healthy_after: Seconds up after which a process's backoff is reset; ``30.0``.
        poll_interval: Seconds between checks of whether each process is alive; ``0.1``.
        registry: Prometheus registry for the counter (the default registry when ``None``).
        clock: Monotonic seconds, for *healthy_after*; :func:`time.monotonic` by default.

    Raises:
        ValueError: If two processes have the same name.
    """

    def __init__(
        self,
        processes: Sequence[ServiceProcess],
        *,
        backoff: Callable[[], Backoff] | None = None,
        name: str = "supervisor",
        together: Collection[str] = (),
        ready_within: float = 30.0,
        stop_grace: float = 20.0,
        healthy_after: float = 30.0,
        poll_interval: float = 0.1,
        registry: CollectorRegistry | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        names = [p.name for p in processes]
        if len(set(names)) != len(names):
            raise ValueError(f"process names must be unique, got {names}")
        self.processes = tuple(processes)
        make = backoff if backoff is not None else (lambda: Backoff(base=0.5, cap=10.0))
        self.backoffs = {p.name: make() for p in self.processes}
        self._name = name
        self.together = frozenset(together)
        self.ready_within, self.stop_grace = ready_within, stop_grace
        self.healthy_after, self.poll_interval = healthy_after, poll_interval
        self._clock = clock
        self._restarts = counter(
            "lifecycle_process_restarts",
            "Supervised processes restarted after they exited.",
            ("process",),
            registry=registry,
        )
        self._down: dict[str, str] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self._started = asyncio.Event()
        self._running = False

    @property
    def name(self) -> str:
        """The name given."""
        return self._name

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has returned and :meth:`stop` has not been called since."""
        return self._running

    async def start(self) -> None:
        """Start each process in order and wait until it is ready (a run of processes named
        in *together*: all at once, then wait for all); then watch them all.

        If one fails, those already started are stopped (in reverse) and the error raised.

        Raises:
            ProcessExitedError, ProcessNotReadyError, OSError: From the failing process.
            RuntimeError: If the supervisor is already started.
        """
        if self._running:
            raise RuntimeError(f"the supervisor {self._name!r} is already started")
        self._stopped.clear()
        started: list[ServiceProcess] = []
        try:
            for step in self._steps():
                for process in step:
                    process.start()
                    started.append(process)
                await _all_ready(step, self.ready_within)
        except BaseException:
            for process in reversed(started):
                await process.stop(self.stop_grace)
            raise
        self._down.clear()
        self._running = True
        self._started.set()
        self._keepers = [
            asyncio.create_task(self._keep(p), name=f"supervise:{p.name}") for p in self.processes
        ]

    def _steps(self) -> list[list[ServiceProcess]]:
        """The processes in start steps: a run of *together* ones is one step."""
        steps: list[list[ServiceProcess]] = []
        for process in self.processes:
            joins = process.name in self.together and steps and steps[-1][0].name in self.together
            if joins:
                steps[-1].append(process)
            else:
                steps.append([process])
        return steps

    async def wait_started(self) -> None:
        """Return once :meth:`start` has started every process and each was ready (at once if
        it has); for work that needs the whole set up, such as seeding data."""
        await self._started.wait()

    async def run(self) -> None:
        """Start (unless started), then supervise until :meth:`stop`; cancelling it stops."""
        if not self._running:
            await self.start()
        try:
            await self._stopped.wait()
        except asyncio.CancelledError:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop watching, then ``SIGTERM`` each process in reverse order (``SIGKILL`` after
        *stop_grace*) and wait for it; idempotent."""
        self._running = False
        self._started.clear()
        keepers, self._keepers = self._keepers, []
        for keeper in keepers:
            keeper.cancel()
        if keepers:
            await asyncio.wait(keepers)
        for process in reversed(self.processes):
            if process.popen is not None and process.alive:
                code = await process.stop(self.stop_grace)
                _log.info("lifecycle.process_stopped", process=process.name, returncode=code)
        self._stopped.set()

    async def readiness(self) -> str | None:
        """``None`` while every process is up; else ``"name: exited with -9; ..."``."""
        if not self._running:
            return "not started"
        return "; ".join(f"{name}: {why}" for name, why in self._down.items()) or None

    async def _keep(self, process: ServiceProcess) -> None:
        backoff = self.backoffs[process.name]
        while True:
            up_since = self._clock()
            while process.alive:
                await asyncio.sleep(self.poll_interval)
                if backoff.attempts and self._clock() - up_since >= self.healthy_after:
                    backoff.reset()
            code = process.returncode
            self._down[process.name] = f"exited with {code}"
            self._restarts.labels(process.name).inc()
            _log.error(
                "lifecycle.process_died",
                process=process.name,
                pid=process.pid,
                returncode=code,
                attempt=backoff.attempts + 1,
            )
            await backoff.wait()
            try:
                process.start()
                await process.wait_ready(self.ready_within)
            except (LifecycleError, OSError) as error:
                _log.error(
                    "lifecycle.process_restart_failed", process=process.name, error=str(error)
                )
                process.kill()  # not ready in time: treat it as dead
                continue
            self._down.pop(process.name, None)
            _log.info("lifecycle.process_restarted", process=process.name, pid=process.pid)

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self.processes)
        return f"<Supervisor {self._name!r} [{names}] started={self._running}>"


async def _all_ready(processes: Sequence[ServiceProcess], within: float) -> None:
    """Wait until every one of *processes* is ready; the first failure is raised at once (the
    other waits are cancelled)."""
    waits = [asyncio.ensure_future(p.wait_ready(within)) for p in processes]
    try:
        for done in asyncio.as_completed(waits):
            await done
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
