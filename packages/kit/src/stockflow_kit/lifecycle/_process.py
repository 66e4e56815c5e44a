"""``ServiceProcess``: one HTTP service as a real subprocess, from sync tests or async code."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families

from stockflow_kit.net import free_port

from ._errors import ProcessExitedError, ProcessNotReadyError
from ._parent import parent_death_hook

__all__ = ["ServiceProcess"]

_log = structlog.get_logger("stockflow_kit.lifecycle")
_POLL = 0.05
_KILL_WAIT = 10.0  # SIGKILL cannot be caught: exiting takes the kernel a moment at most


class ServiceProcess:
    """One HTTP service run as a subprocess: start, wait until ready, scrape, stop, kill.

    ::

        service = ServiceProcess(
            ["stockflow", "serve", "inventory"], port_env="INVENTORY_PORT", log=tmp / "inv.log"
        )
        service.start()
        await service.wait_ready()
        assert await service.metric("inventory_commands_total") == 0
        assert service.terminate() == 0

    :meth:`start`, :meth:`kill` and :meth:`terminate` are synchronous (they return at once,
    or after the process exits); :meth:`wait_ready`, :meth:`stop` and the scrapes are
    ``async`` and never block the event loop. The process can be started again after it
    exited, on the same port.

    Args:
        argv: The program and its arguments.
        name: The name in logs and errors; the program's file name by default.
        env: Variables set over :data:`os.environ` (which is inherited).
        port: The port the service listens on; a :func:`free_port` by default.
        port_env: If given, the variable that tells the child its port (e.g. ``"PORT"``);
            otherwise pass the port in *argv* or *env* yourself.
        host: Where the service listens; ``127.0.0.1`` by default.
        ready_path: The path that answers 200 once the service is ready; ``/readyz``.
        log: A file that receives the child's stdout and stderr (appended). ``None``:
            stdout is discarded and stderr is inherited, so errors show in the parent's.
            stdin is always ``/dev/null``.
        die_with_parent: Make the child receive ``SIGTERM`` when the process (the thread)
            that started it dies (Linux; see :func:`die_with_parent`); ``True`` by default.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        port_env: str | None = None,
        host: str = "127.0.0.1",
        ready_path: str = "/readyz",
        log: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        if not argv:
            raise ValueError("argv must name a program")
        self.argv = list(argv)
        self.name = name if name is not None else Path(self.argv[0]).name
        self.env = dict(env or {})
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.port_env = port_env
        self.ready_path = ready_path
        self.log = log
        self.die_with_parent = die_with_parent
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def popen(self) -> subprocess.Popen[bytes] | None:
        """The :class:`subprocess.Popen` of the latest start, or ``None`` before the first."""
        return self._popen

    @property
    def pid(self) -> int | None:
        """The pid of the latest start, or ``None`` before the first."""
        return None if self._popen is None else self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once exited (negative: killed by that signal), else ``None``."""
        return None if self._popen is None else self._popen.poll()

    @property
    def alive(self) -> bool:
        """Whether the process was started and has not exited (a stopped one is alive)."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def base_url(self) -> str:
        """``http://{host}:{port}``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start the process (and return at once; see :meth:`wait_ready`).

        Raises:
            RuntimeError: If it is already running.
            OSError: If the program cannot be run.
        """
        if self.alive:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        env = {**os.environ, **self.env}
        if self.port_env is not None:
            env[self.port_env] = str(self.port)
        hook = parent_death_hook() if self.die_with_parent else None
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log is not None:
            out = self.log.open("ab")
        try:
            self._popen = subprocess.Popen(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=None if self.log is None else out,
                preexec_fn=hook,  # only prctl and getppid run between fork and exec
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own copy
        _log.info("lifecycle.process_started", process=self.name, pid=self.pid, port=self.port)

    async def wait_ready(self, within: float = 20.0) -> None:
        """Poll ``GET {base_url}{ready_path}`` until it answers 200.

        Raises:
            ProcessExitedError: As soon as the process exits meanwhile (with its log tail).
            ProcessNotReadyError: If it is not ready within *within* seconds.
            RuntimeError: If it was never started.
        """
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        deadline = time.monotonic() + within
        url = self.base_url + self.ready_path
        async with httpx.AsyncClient(trust_env=False) as client:
            while True:
                code = self._popen.poll()
                if code is not None:
                    raise ProcessExitedError(self.name, code, self.log_tail())
                remaining = deadline - time.monotonic()
                try:
                    response = await client.get(url, timeout=max(_POLL, min(2.0, remaining)))
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass  # not listening yet, or busy starting
                if time.monotonic() >= deadline:
                    raise ProcessNotReadyError(self.name, within, self.log_tail())
                await asyncio.sleep(_POLL)

    async def metrics(self, path: str = "/metrics") -> str:
        """The text of ``GET {base_url}{path}``.

        Raises:
            httpx.HTTPError: If the request fails or does not answer 2xx.
        """
        async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
            response = await client.get(self.base_url + path)
            response.raise_for_status()
            return response.text

    async def metric(self, name: str) -> float:
        """The sum of every sample named *name* (all label sets) at ``/metrics``; 0 if none.

        *name* is a sample name as exposed, e.g. ``inventory_commands_total`` or
        ``inventory_batch_size_sum``.

        Raises:
            httpx.HTTPError: If the scrape fails.
        """
        text = await self.metrics()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )

    def send_signal(self, sig: int) -> None:
        """Send *sig* to the process if it is alive (e.g. ``SIGSTOP`` / ``SIGCONT``)."""
        if self.alive:
            assert self._popen is not None
            self._popen.send_signal(sig)

    def kill(self) -> None:
        """``SIGKILL`` the process if it is alive, and reap it."""
        if self._popen is not None and self._popen.poll() is None:
            self._popen.kill()
            self._popen.wait()

    def terminate(self, grace: float = 20.0) -> int:
        """``SIGTERM``, wait up to *grace* seconds, then ``SIGKILL``; return the exit code.

        Blocks the calling thread; from async code use :meth:`stop`.

        Raises:
            RuntimeError: If it was never started.
        """
        popen = self._started()
        if popen.poll() is None:
            popen.terminate()
            try:
                return popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._escalate(grace)
        return popen.wait()

    async def stop(self, grace: float = 20.0) -> int:
        """Like :meth:`terminate`, without blocking the event loop; return the exit code.

        Raises:
            RuntimeError: If it was never started.
        """
        popen = self._started()
        if popen.poll() is None:
            popen.terminate()
            if not await self._exited_within(grace):
                self._escalate(grace)
                await self._exited_within(_KILL_WAIT)
        return popen.wait()  # it has exited: this only reaps it

    async def _exited_within(self, seconds: float) -> bool:
        popen = self._started()
        deadline = time.monotonic() + seconds
        while popen.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL)
        return True

    def _escalate(self, grace: float) -> None:
        _log.warning("lifecycle.process_killed", process=self.name, pid=self.pid, after=grace)
        self._started().send_signal(signal.SIGKILL)

    def _started(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen

    def log_tail(self, chars: int = 3000) -> str:
        """The last *chars* characters of the log file ("" without one, or before it exists)."""
        if self.log is None:
            return ""
        try:
            with self.log.open("rb") as file:
                size = file.seek(0, os.SEEK_END)
                file.seek(max(0, size - 4 * chars))
                return file.read().decode(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        return f"<ServiceProcess {self.name!r} pid={self.pid} port={self.port}>"
