"""Bus consumption in a process of its own, feeding the writer over a pipe (ADR 0006).

With ``INVENTORY_FEEDER=process`` (one replica only), the inventory starts a *feeder* child:
``python -m stockflow.inventory.entrypoints.feeder``, given the SAME settings (as JSON in its
environment) and one end of a socket pair (its file descriptor number in the environment; the
child's stdin and stdout stay free). The feeder runs the same
:class:`~.consumers.InventoryConsumers` as the in-process mode (fetch, decode, translate,
dead-letter malformed messages, ack after the outcome), but its sink is the socket: each batch
of commands goes to the writer process as one msgpack frame, and the writer's reply says whether
the batch was committed (then the feeder acks it) or not (then it naks it). Fetching, decoding
and translating thus run on the second core, beside the writer's decide and commit.

Failure semantics are the bus's: if the writer dies, the feeder reads EOF (and gets SIGTERM as
its parent-death signal) and exits without acking; if the feeder dies, the writer stops being
ready and restarts it after a jittered backoff. Either way every unacked message is
redelivered, and the writer's inbox keeps effects exactly-once.

The frames and the feeder's sink are in :mod:`.feeder_link`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import sys
from typing import Final

import msgspec
import structlog
from prometheus_client import REGISTRY, generate_latest

from stockflow.inventory.entrypoints.consumers import InventoryConsumers
from stockflow.inventory.entrypoints.feeder_link import (
    METRICS_INTERVAL,
    METRICS_TOKEN,
    READY_TOKEN,
    FeederFailedError,
    Frame,
    PipeSink,
    Reply,
    frame_bytes,
    read_frame,
    socket_streams,
)
from stockflow.inventory.service_layer.batch import Outcome, Submission
from stockflow.inventory.service_layer.ownership import Ownership
from stockflow.inventory.service_layer.writer import InventoryWriter
from stockflow.inventory.settings import InventorySettings
from stockflow.platform.runner import configure_process
from stockflow_kit.lifecycle import die_with_parent
from stockflow_kit.messaging import ConsumerConfig, make_bus
from stockflow_kit.observability.forwarding import ForwardedMetrics
from stockflow_kit.resilience import Backoff

__all__ = ["FeederProcess", "run_feeder"]

_log = structlog.get_logger("stockflow.inventory")
_STOP_SECONDS: Final = 10.0


async def _send_metrics(writer: asyncio.StreamWriter) -> None:
    """Now and then, this process's metrics to the writer, which shows them on its /metrics."""
    encoder = msgspec.msgpack.Encoder()
    while not writer.is_closing():
        text = generate_latest(REGISTRY)
        writer.write(frame_bytes(encoder.encode(Frame(METRICS_TOKEN, [], text))))
        await asyncio.sleep(METRICS_INTERVAL)


async def run_feeder(fd: int) -> None:
    """The feeder's main loop: read the settings (the writer's first frame), then consume
    into the socket until the writer closes it."""
    reader, writer = await socket_streams(fd)
    first = await read_frame(reader)
    if first is None:
        return  # the writer went away before it said anything
    settings = InventorySettings.model_validate_json(first)
    configure_process(settings, service="inventory-feeder", tracer="inventory-feeder")
    sink = PipeSink(Ownership(settings.partitions, 1, 0), writer)
    bus = make_bus(settings.bus_url, name="inventory-feeder")
    await bus.start()
    consumers = InventoryConsumers(
        bus,
        sink,
        batch_size=settings.batch_size,
        max_wait=settings.batch_wait,
        config=ConsumerConfig(ack_wait=settings.ack_wait, max_deliver=settings.max_deliver),
        in_flight_batches=max(settings.in_flight_batches, 2),
    )
    await consumers.start()
    # Token 0, no items: "subscribed and consuming". The writer reports ready only after it.
    writer.write(frame_bytes(msgspec.msgpack.encode(Frame(READY_TOKEN, []))))
    decoder = msgspec.msgpack.Decoder(Reply)
    metrics = asyncio.create_task(_send_metrics(writer), name="feeder-metrics")
    try:
        while (payload := await read_frame(reader)) is not None:
            sink.answer(decoder.decode(payload))
    finally:  # the writer went away: nothing more is acked; the bus redelivers
        metrics.cancel()
        sink.fail_all(FeederFailedError("the inventory writer closed the socket"))
        try:
            await asyncio.wait_for(consumers.stop(), _STOP_SECONDS)
            await asyncio.wait_for(bus.close(), _STOP_SECONDS)
        except TimeoutError:
            _log.warning("inventory.feeder_stop_timed_out")


class FeederProcess:
    """The writer's side: runs the feeder child, serves its frames, restarts it if it dies.

    Same lifecycle as :class:`~.consumers.InventoryConsumers` (``start``, ``stop``,
    ``running``), so the service does not care which mode it runs in.
    """

    def __init__(
        self,
        writer: InventoryWriter,
        settings: InventorySettings,
        metrics: ForwardedMetrics | None = None,
    ) -> None:
        self.writer = writer
        self.settings = settings
        self.metrics = metrics or ForwardedMetrics({"process": "feeder"})
        self._process: asyncio.subprocess.Process | None = None
        self._socket: socket.socket | None = None
        self._pipe: asyncio.StreamWriter | None = None  # the socket, once supervised
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready = False
        self._backoff = Backoff(base=0.5, cap=10.0)

    async def start(self) -> None:
        self._stopping = False
        await self._spawn()
        self._task = asyncio.create_task(self._supervise(), name="inventory-feeder")

    async def stop(self) -> None:
        self._stopping = True
        process, sock, pipe = self._process, self._socket, self._pipe
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # EOF: the feeder stops consuming and exits
        if pipe is not None:
            pipe.close()  # the same EOF once supervised (its socket was detached into it)
        if process is not None:
            try:
                await asyncio.wait_for(process.wait(), _STOP_SECONDS)
            except TimeoutError:
                _log.warning("inventory.feeder_killed_at_stop", seconds=_STOP_SECONDS)
                process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if sock is not None:
            sock.close()

    @property
    def running(self) -> bool:
        process = self._process
        return self._ready and process is not None and process.returncode is None

    async def _spawn(self) -> None:
        self._ready = False
        if self._socket is not None:
            self._socket.close()
        mine, theirs = socket.socketpair()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "stockflow.inventory.entrypoints.feeder",
                str(theirs.fileno()),
                str(os.getpid()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        # The same settings as the writer's (the credential stays here: the feeder needs none).
        settings = self.settings.model_dump_json(exclude={"service_token"}).encode()
        mine.sendall(frame_bytes(settings))
        self._socket = mine

    async def _supervise(self) -> None:
        while True:
            process, sock = self._process, self._socket
            assert process is not None
            assert sock is not None
            reader, pipe = await socket_streams(sock.detach())
            self._socket, self._pipe = None, pipe
            try:
                await self._serve(reader, pipe)
            except Exception as error:  # whatever broke the link, the feeder is replaced
                _log.error("inventory.feeder_link_failed", error=repr(error))
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            finally:
                pipe.close()
                self._pipe = None
            code = await process.wait()
            self.metrics.clear()  # its counters died with it
            if self._stopping:
                return
            _log.error("inventory.feeder_died", returncode=code)
            await self._backoff.wait()  # the bus redelivers what it had not acked
            await self._spawn()

    async def _serve(self, reader: asyncio.StreamReader, pipe: asyncio.StreamWriter) -> None:
        decoder = msgspec.msgpack.Decoder(Frame)
        encoder = msgspec.msgpack.Encoder()

        def reply(token: int, future: asyncio.Future[list[Outcome]]) -> None:
            error = future.exception()
            answer = Reply(token, None if error is None else f"{type(error).__name__}: {error}")
            if not pipe.is_closing():
                pipe.write(frame_bytes(encoder.encode(answer)))

        while (payload := await read_frame(reader)) is not None:
            frame = decoder.decode(payload)
            if frame.token == READY_TOKEN:
                self._ready = True
                self._backoff.reset()
                continue
            if frame.token == METRICS_TOKEN:
                self.metrics.update((frame.metrics or b"").decode())
                continue
            submissions = [
                Submission(
                    message_id=i.message_id,
                    command=i.command,
                    correlation_id=i.correlation_id,
                    traceparent=i.traceparent,
                )
                for i in frame.items
            ]
            try:
                future = self.writer.enqueue_many(submissions)
            except Exception as error:  # the writer stopped: the feeder naks, the bus redelivers
                failed: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
                failed.set_exception(error)
                reply(frame.token, failed)
                continue
            future.add_done_callback(functools.partial(reply, frame.token))


def main() -> None:
    """``python -m stockflow.inventory.entrypoints.feeder FD PARENT_PID``: the feeder child
    (see the module docstring); it exits when its parent is gone."""
    fd, parent = (int(arg) for arg in sys.argv[1:3])
    die_with_parent(parent=parent)
    asyncio.run(run_feeder(fd))


if __name__ == "__main__":
    main()
