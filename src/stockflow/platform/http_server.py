"""Serving a service's ASGI app with uvicorn: a pre-bound socket and signals left to the runner.

Several services share one process in the embedded deployment, so no single uvicorn server
may own SIGINT/SIGTERM: the runner installs one handler and tells every server to exit. Ports
are bound before anything starts, so a port in use is one clear error, not a traceback.

uvicorn's main loop wakes ten times a second to see whether it should exit (and, every tenth
wake, to refresh the ``date`` header); five servers in one idle process are fifty wakeups a
second. :class:`HttpServer` wakes once a second for the date, and at once when told to exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["HttpServer", "PortInUseError", "bind_port"]

_TICKS_PER_SECOND = 10
"""uvicorn's ``on_tick`` counts tenths of a second: the date header is refreshed when the
counter is a multiple of 10."""


class PortInUseError(OSError):
    """The port a service should listen on is taken."""


def bind_port(host: str, port: int, *, service: str) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port).

    Raises:
        PortInUseError: something else listens there; the message says what to do.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(
                error.errno,
                f"port {port} on {host} ({service}) is already in use: stop what listens there,"
                " or pick other ports with --port-base (or the service's *_PORT variable)",
            ) from None
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class HttpServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the runner."""

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket,
        *,
        graceful_seconds: int = 10,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        config = uvicorn.Config(
            app,
            log_config=None,  # the kit's logging stays in charge
            access_log=False,  # the kit's MetricsMiddleware writes the access line
            lifespan="off",  # the runner starts and stops the service itself
            timeout_graceful_shutdown=graceful_seconds,
            timeout_keep_alive=5,
        )
        self._exit = asyncio.Event()
        super().__init__(config)
        self.socket = sock
        self.on_shutdown = on_shutdown

    @property  # uvicorn assigns a plain attribute; this one wakes main_loop
    def should_exit(self) -> bool:
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit.set()
        else:
            self._exit.clear()

    async def main_loop(self) -> None:
        """uvicorn's loop, woken once a second (the date header) or by :attr:`should_exit`."""
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + _TICKS_PER_SECOND) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 1.0)
            should_exit = await self.on_tick(counter)

    @property
    def port(self) -> int:
        port: int = self.socket.getsockname()[1]
        return port

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Tell the app first (*on_shutdown*: long-lived responses such as event streams end),
        then uvicorn's drain of the requests in flight."""
        if self.on_shutdown is not None:
            self.on_shutdown()
        await super().shutdown(sockets)

    async def run_on_socket(self) -> None:
        await self.serve(sockets=[self.socket])
