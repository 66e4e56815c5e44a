"""The link between the inventory writer and its feeder child: frames over a socket pair.

Frames are length-prefixed (4 bytes, big endian) msgpack: :class:`Frame` from feeder to writer
(a batch of commands, the ready handshake, or the feeder's metrics), :class:`Reply` back (the
batch committed, or why not). The first frame from the writer is its settings, as JSON.
:class:`PipeSink` is the feeder's end: the command sink its consumers feed.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Sequence
from typing import Final

import msgspec

from stockflow.inventory.domain.commands import Command
from stockflow.inventory.service_layer.batch import Outcome, Submission
from stockflow.inventory.service_layer.ownership import Ownership

__all__ = [
    "METRICS_INTERVAL",
    "METRICS_TOKEN",
    "READY_TOKEN",
    "FeederFailedError",
    "Frame",
    "Item",
    "PipeSink",
    "Reply",
    "frame_bytes",
    "read_frame",
    "socket_streams",
]

_LENGTH: Final = struct.Struct(">I")
METRICS_TOKEN: Final = -1
"""The token of a frame carrying the feeder's metrics (sent every :data:`METRICS_INTERVAL` s)."""
METRICS_INTERVAL: Final = 2.0
READY_TOKEN: Final = 0
"""The token of the feeder's first frame: it has bound its subscriptions and consumes."""


class Item(msgspec.Struct, array_like=True, gc=False):
    message_id: str
    correlation_id: str | None
    command: Command
    traceparent: str | None = None


class Frame(msgspec.Struct, array_like=True, gc=False):
    token: int
    items: list[Item]
    metrics: bytes | None = None
    """With :data:`METRICS_TOKEN`: the feeder's metrics (Prometheus text format)."""


class Reply(msgspec.Struct, array_like=True, gc=False):
    token: int
    error: str | None = None


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """One length-prefixed frame, or ``None`` when the other side is gone: EOF, or a reset (a
    peer killed with unread data in its buffer resets the connection instead of closing it)."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        return await reader.readexactly(_LENGTH.unpack(header)[0])
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def frame_bytes(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


class FeederFailedError(RuntimeError):
    """The writer could not commit a batch (it will be redelivered)."""


class PipeSink:
    """The feeder's sink: sends each batch to the writer and waits for its reply."""

    def __init__(self, ownership: Ownership, writer: asyncio.StreamWriter) -> None:
        self._ownership = ownership
        self._writer = writer
        self._encoder = msgspec.msgpack.Encoder()
        self._pending: dict[int, asyncio.Future[list[Outcome]]] = {}
        self._next = READY_TOKEN
        self._failed: BaseException | None = None

    @property
    def ownership(self) -> Ownership:
        return self._ownership

    def enqueue_many(self, submissions: Sequence[Submission]) -> asyncio.Future[list[Outcome]]:
        if self._failed is not None:  # the writer is gone: nothing can commit, nothing acks
            raise FeederFailedError(str(self._failed))
        self._next += 1
        token = self._next
        items = [
            Item(s.message_id, s.correlation_id, s.command, s.traceparent) for s in submissions
        ]
        self._writer.write(frame_bytes(self._encoder.encode(Frame(token, items))))
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        return future

    def answer(self, reply: Reply) -> None:
        future = self._pending.pop(reply.token, None)
        if future is None or future.done():
            return
        if reply.error is None:
            future.set_result([])  # the consumer only needs to know the batch committed
        else:
            future.set_exception(FeederFailedError(reply.error))

    def fail_all(self, error: BaseException) -> None:
        """Fail every batch in flight and refuse new ones (the writer went away)."""
        self._failed = error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()


async def socket_streams(fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return await asyncio.open_connection(sock=sock, limit=2**26)
