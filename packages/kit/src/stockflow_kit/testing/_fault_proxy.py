"""An asyncio TCP proxy that injects latency, resets and black holes, switchable at run time."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Self, TypeAlias

from stockflow_kit.net import free_port

__all__ = [
    "PASS_THROUGH",
    "BlackHole",
    "Fault",
    "FaultProxy",
    "Latency",
    "PassThrough",
    "ProxyCounts",
    "Reset",
]

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class PassThrough:
    """No fault: bytes are forwarded both ways as they come."""


PASS_THROUGH = PassThrough()
"""The fault that is none (a proxy starts with it)."""


@dataclass(frozen=True)
class Latency:
    """Hold back every chunk the upstream sends by ``max(0, delay + uniform(-jitter, jitter))``.

    Only the answers are delayed (upstream to client), as toxiproxy's ``latency`` toxic does
    by default, so one request and its one-chunk answer take about *delay* longer. Chunks of
    one connection keep their order: a connection's delays add up.

    Args:
        delay: Seconds added to each chunk; not negative.
        jitter: At most this many seconds more or less, uniformly; ``0.0`` by default.

    Raises:
        ValueError: If *delay* or *jitter* is negative.
    """

    delay: float
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.delay < 0 or self.jitter < 0:
            raise ValueError("delay and jitter must not be negative")


@dataclass(frozen=True)
class Reset:
    """Reset connections: a new one is accepted and at once reset (TCP RST); setting this fault
    also resets every connection that is open (the cable is cut)."""


@dataclass(frozen=True)
class BlackHole:
    """Accept connections and never answer: what a client sends is read and dropped, the
    upstream is not called and nothing is closed. Open connections go silent too."""


Fault: TypeAlias = PassThrough | Latency | Reset | BlackHole
"""What a :class:`FaultProxy` does to the traffic."""


@dataclass(frozen=True)
class ProxyCounts:
    """What a :class:`FaultProxy` has seen since it started.

    Attributes:
        connections: Connections accepted, whatever the fault.
        active: Connections open now.
        resets: Connections reset (new ones under :class:`Reset`, and open ones cut when it was
            set or when the upstream could not be reached).
        black_holed: Connections accepted under :class:`BlackHole`.
        delayed_chunks: Chunks held back by :class:`Latency`.
    """

    connections: int = 0
    active: int = 0
    resets: int = 0
    black_holed: int = 0
    delayed_chunks: int = 0


class _Connection:
    """One client connection and, once connected, its upstream connection."""

    __slots__ = ("client", "upstream")

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close *writer*'s connection with a TCP RST (``SO_LINGER`` 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forward TCP connections from ``host:port`` to an upstream, with a fault switchable live.

    Start it with ``async with`` (or :meth:`start` and :meth:`stop`) and point the client at
    :attr:`url` (or :attr:`port`). :meth:`set_fault` takes effect at once: new connections
    get the new fault, open ones get it from their next chunk (and :class:`Reset` cuts them).
    The proxy lives on one event loop and is not thread-safe: from another thread, call
    ``loop.call_soon_threadsafe(proxy.set_fault, fault)``.

    Args:
        upstream_host: Where connections are forwarded.
        upstream_port: The upstream's port.
        host: The address to listen on; ``127.0.0.1`` by default.
        port: The port to listen on; ``None`` (the default) picks a free one with
            :func:`stockflow_kit.net.free_port`.
        fault: The fault at start; :data:`PASS_THROUGH` by default.
        seed: Seeds the jitter of :class:`Latency`, so a run can be repeated; ``None`` for
            an unseeded generator.
        connect_timeout: Seconds allowed to reach the upstream before the client's connection
            is reset; ``5.0`` by default.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        fault: Fault = PASS_THROUGH,
        seed: int | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = free_port(host) if port is None else port
        self._fault: Fault = fault
        self._rng = random.Random(seed)
        self._connect_timeout = connect_timeout
        self._counts = ProxyCounts()
        self._open: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """``http://host:port``: the base URL an HTTP client uses to go through the proxy."""
        return f"http://{self.host}:{self.port}"

    @property
    def fault(self) -> Fault:
        """The fault applied now."""
        return self._fault

    @property
    def counts(self) -> ProxyCounts:
        """A snapshot of the counters (see :class:`ProxyCounts`)."""
        return replace(self._counts, active=len(self._open))

    def set_fault(self, fault: Fault) -> None:
        """Apply *fault* from now on; :class:`Reset` also resets every open connection."""
        self._fault = fault
        if isinstance(fault, Reset):
            for connection in list(self._open):
                self._cut(connection)

    async def start(self) -> None:
        """Listen on :attr:`host`:attr:`port`.

        Raises:
            OSError: If the port cannot be bound.
        """
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and close every open connection (with a reset)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for connection in list(self._open):
            self._cut(connection, count=False)
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _cut(self, connection: _Connection, *, count: bool = True) -> None:
        if count:
            self._counts = replace(self._counts, resets=self._counts.resets + 1)
        _reset(connection.client)
        if connection.upstream is not None:
            connection.upstream.transport.abort()

    def _delay(self, latency: Latency) -> float:
        return max(0.0, latency.delay + self._rng.uniform(-latency.jitter, latency.jitter))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._counts = replace(self._counts, connections=self._counts.connections + 1)
        connection = _Connection(writer)
        try:
            fault = self._fault
            if isinstance(fault, Reset):
                self._counts = replace(self._counts, resets=self._counts.resets + 1)
                _reset(writer)
                return
            self._open.add(connection)
            if isinstance(fault, BlackHole):
                self._counts = replace(self._counts, black_holed=self._counts.black_holed + 1)
                while await reader.read(_CHUNK):
                    pass  # swallowed; the client waits for an answer that never comes
                return
            await self._forward(connection, reader)
        except (ConnectionError, OSError):
            pass  # the connection was reset or broken: nothing more to forward
        finally:
            self._open.discard(connection)
            for end in (writer, connection.upstream):
                if end is not None:
                    end.transport.abort()
            self._handlers.discard(task)

    async def _forward(self, connection: _Connection, reader: asyncio.StreamReader) -> None:
        try:
            upstream_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), self._connect_timeout
            )
        except (OSError, TimeoutError):
            self._counts = replace(self._counts, resets=self._counts.resets + 1)
            _reset(connection.client)
            return
        connection.upstream = upstream
        await asyncio.gather(
            self._pump(reader, upstream, answers=False),
            self._pump(upstream_reader, connection.client, answers=True),
        )

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, answers: bool
    ) -> None:
        """Copy *source* to *sink* under the current fault until EOF; then half-close *sink*."""
        try:
            while chunk := await source.read(_CHUNK):
                fault = self._fault
                if isinstance(fault, Latency) and answers:
                    self._counts = replace(
                        self._counts, delayed_chunks=self._counts.delayed_chunks + 1
                    )
                    await asyncio.sleep(self._delay(fault))
                    fault = self._fault
                if isinstance(fault, BlackHole | Reset):
                    continue  # dropped: a black hole says nothing, a reset one is gone
                sink.write(chunk)
                await sink.drain()
            if sink.can_write_eof() and not sink.is_closing():
                sink.write_eof()
        except (ConnectionError, OSError):
            sink.transport.abort()
