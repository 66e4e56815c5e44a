"""The bus on NATS JetStream (nats-py): file-stored streams, durable pull consumers, dedupe.

Design:

* **Streams**: one per topic stream token (``orders.events`` → stream ``orders`` capturing
  ``orders`` and ``orders.>``; dead letters go to the ordinary stream ``deadletter``), file
  storage, ``duplicate_window`` from the URL. Created or updated idempotently when first
  used (cached per bus); the dead-letter stream at :meth:`JetStreamBus.start`. Naming and
  URL options: :mod:`stockflow_kit.messaging._jetstream_config`.
* **Publish**: ``Nats-Msg-Id`` = envelope id (the broker drops re-publishes within the
  window), plus ``traceparent`` and ``X-Correlation-ID`` headers. A batch is pipelined on one
  connection (so it stays in order) and succeeds only when *every* message has a PubAck (a
  duplicate counts as stored). While disconnected, or without all PubAcks, it is retried a
  few times with backoff (stamina, from the first unconfirmed message on), then fails with
  :class:`PublishError`. A PubAck means the broker has it, not that it is on disk: JetStream
  2.9 acks before fsync, which is why the consumer's database, not the broker, is the truth.
* **Subscribe**: a durable pull consumer (explicit ack, ``ack_wait`` from
  :class:`ConsumerConfig`, deliver all, unlimited server-side deliveries). Dead-lettering is
  done here: a message fetched with ``num_delivered > max_deliver`` is published to
  ``deadletter.<stream>`` (PubAck awaited) and then terminated (``+TERM``); if that publish
  fails it stays unacked and comes back. Nak reasons are remembered in memory per
  subscription (best effort: another process's reasons are unknown → ``"ack_wait expired"``).
  A payload that is not an envelope is dead-lettered raw at once (no fetch could return it;
  operators read it from the ``deadletter`` stream with NATS tools).
  :meth:`~JetStreamSubscription.dead_letter` takes the same path for a delivery in hand;
  the subscription remembers the ones it terminated so that acking or nakking their batch
  skips them.
* **Ack/nak** are pipelined; the last one of a call is sent as a request, and since the
  server handles one connection's acks for a consumer in order, its reply confirms them all.
  A failed confirmation raises :class:`AckError`: the messages may be redelivered, which
  idempotent consumers tolerate.
* **Reconnect**: nats-py reconnects forever, here with exponential backoff and full jitter
  from ``reconnect_wait`` (:meth:`JetStreamBus._reconnect_backoff`), and resubscribes; fetch returns ``[]`` while disconnected; unacked messages are redelivered
  after ``ack_wait``; acked ones are not (the consumer state is in the file store).

Errors: nats-py's exceptions (``nats.errors.Error`` and its ``nats.js.errors`` subclasses, plus
``OSError`` and ``TimeoutError``) are mapped at this boundary, with ``raise ... from err``::

    nats-py                                          kit
    ───────────────────────────────────────────────  ──────────────────────────────────────
    ConnectionClosedError, or the bus closed ....... BusClosedError
    start: NoServersError, OSError, TimeoutError,
           NoRespondersError (no JetStream) ......... MessagingError
    publish: not connected, PubAck missing in time,
             no responders (NoStreamResponse), 503 .. PublishError  (after stamina's retries)
    publish: APIError from the stream (not 503) .... PublishError  (at once: not retryable)
    subscribe: APIError, Error; durable on another
               topic ............................... SubscribeError
    ack / nak: not connected, reply timeout, Error . AckError      (the messages come back)
    dead_letter: publish not confirmed, Error ...... AckError      (the message comes back)
    lag: APIError, Error ........................... MessagingError
    fetch: ConnectionDrainingError ................. BusClosedError
    fetch: not connected, OutboundBufferLimitError . no error: returns []
    fetch: other Error ............................. MessagingError
    fetch: payload is not an envelope .............. no error: dead-lettered (raw) at once
    invalid topic or durable name .................. ValueError    (a bug, before any I/O)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import nats.errors
import nats.js.errors
import stamina
import structlog
from nats.aio.client import Client as NATS
from nats.aio.client import Server
from nats.js import JetStreamContext, api
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging._jetstream_config import check_durable_name, parse_jetstream_url
from stockflow_kit.messaging._jetstream_publish import (
    PubAckPipeline,
    RejectedPublishError,
    UnconfirmedPublishError,
    count_duplicates,
)
from stockflow_kit.messaging._jetstream_pull import PullInbox
from stockflow_kit.messaging._jetstream_subscription import (
    MSG_ID_HEADER,
    NATS_ERRORS,
    JetStreamSubscription,
)
from stockflow_kit.messaging._telemetry import Carriers, bus_metrics, publish_span
from stockflow_kit.messaging.bus import (
    DEAD_LETTER_PREFIX,
    BusClosedError,
    ConsumerConfig,
    MessagingError,
    PublishError,
    SubscribeError,
)
from stockflow_kit.messaging.envelope import Envelope, encode_envelope
from stockflow_kit.observability.correlation import CORRELATION_HEADER

__all__ = ["MAX_ACK_PENDING", "JetStreamBus", "JetStreamSubscription"]

MAX_ACK_PENDING: Final = 20_000
"""Deliveries a consumer may have unacked before the server stops handing out more."""
_PUBLISH_ATTEMPTS: Final = 3
_RECONNECT_CAP: Final = 10
"""The reconnect backoff stops growing at this many times ``reconnect_wait``."""
_log = structlog.get_logger("stockflow_kit.messaging")


@dataclass(slots=True)
class _Progress:
    """How far a publish got: the first message without a PubAck, duplicates so far."""

    start: int = 0
    duplicates: int = 0


class JetStreamBus:
    """A :class:`~stockflow_kit.messaging.bus.Bus` on NATS JetStream.

    Args:
        url: ``nats://host:port[?prefix=..&duplicate_window=..&timeout=..&reconnect_wait=..]``
            (options in :mod:`~stockflow_kit.messaging._jetstream_config`).
        name: The client connection name, shown by the server's monitoring.
        registry: Prometheus registry for the messaging metrics (default registry if ``None``).
    """

    def __init__(
        self, url: str, *, name: str = "stockflow", registry: CollectorRegistry | None = None
    ) -> None:
        self.options = parse_jetstream_url(url)
        self.naming = self.options.naming
        self.metrics = bus_metrics(registry)
        self._name = name
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._pipeline: PubAckPipeline | None = None
        self._closed = False
        self._streams: set[str] = set()
        self._streams_lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect (waiting at most ``timeout``) and create the dead-letter stream.

        Raises:
            MessagingError: when no server answers in time or JetStream is not enabled.
            BusClosedError: when the bus was closed.
        """
        if self._closed:
            raise BusClosedError("the JetStream bus was closed")
        if self._nc is not None:
            return
        nc, seconds = NATS(), self.options.timeout
        try:
            async with asyncio.timeout(seconds):  # nats-py retries a first connect forever
                await nc.connect(
                    servers=list(self.options.servers),
                    name=self._name,
                    max_reconnect_attempts=-1,
                    # typed int in nats-py, used as asyncio.sleep(...) seconds: a float is fine
                    reconnect_time_wait=self.options.reconnect_wait,  # type: ignore[arg-type]
                    connect_timeout=max(1, round(seconds)),
                    drain_timeout=max(1, round(seconds)),
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    reconnect_to_server_handler=self._reconnect_backoff,
                )
            self._nc, self._js = nc, nc.jetstream(timeout=seconds)
            self._pipeline = PubAckPipeline(nc)
            await self._pipeline.open()
            await self._ensure_stream(DEAD_LETTER_PREFIX)
        except (*NATS_ERRORS, MessagingError) as err:
            await nc.close()
            self._nc = self._js = self._pipeline = None
            msg = f"cannot start the JetStream bus on {self.options.servers}: {err!r}"
            raise MessagingError(msg) from err

    async def close(self) -> None:
        """Drain the connection (pending acks and publishes go out), then close. Idempotent."""
        self._closed = True
        nc, self._nc, self._js, self._pipeline = self._nc, None, None, None
        if nc is None or nc.is_closed:
            return
        try:
            await nc.drain()
        except NATS_ERRORS:
            await nc.close()

    def _reconnect_backoff(
        self, servers: list[Server], info: dict[str, Any]
    ) -> tuple[Server | None, float]:
        """Least-tried server first; wait ``uniform(0, min(w * 2**n, 10 * w))`` seconds.

        ``w`` is ``reconnect_wait`` and ``n`` the failed attempts on that server since it was
        last connected: exponential backoff with full jitter, so restarted servers are not
        hit by every client at once.
        """
        server = min(servers, key=lambda candidate: candidate.reconnects)
        wait = self.options.reconnect_wait
        ceiling = wait * min(2 ** min(server.reconnects, 16), _RECONNECT_CAP)
        return server, random.uniform(0, ceiling)

    async def _on_error(self, err: Exception) -> None:
        _log.warning("messaging.nats_error", bus=self._name, error=repr(err))

    async def _on_disconnected(self) -> None:
        if not self._closed:
            _log.warning("messaging.nats_disconnected", bus=self._name)

    async def _on_reconnected(self) -> None:
        _log.info("messaging.nats_reconnected", bus=self._name, servers=self.options.servers)

    def _context(self) -> tuple[NATS, JetStreamContext]:
        if self._nc is None or self._js is None or self._nc.is_closed:
            state = "was closed" if self._closed else "is not started"
            raise BusClosedError(f"the JetStream bus {state}")
        return self._nc, self._js

    async def _ensure_stream(self, token: str) -> str:
        """Create or update the stream of *token* once per bus; return its name."""
        name = self.naming.stream(token)
        if token in self._streams:
            return name
        _, js = self._context()
        async with self._streams_lock:
            if token not in self._streams:
                config = api.StreamConfig(
                    name=name,
                    subjects=self.naming.stream_subjects(token),
                    storage=api.StorageType.FILE,
                    duplicate_window=self.options.duplicate_window,
                    num_replicas=self.options.replicas,
                )
                try:
                    await js.add_stream(config)
                except nats.js.errors.BadRequestError:  # exists with another config
                    await js.update_stream(config)
                self._streams.add(token)
        return name

    async def publish(
        self,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        headers: Mapping[str, str] | None = None,
        causes: Sequence[str | None] | None = None,
    ) -> None:
        """Append *envelopes* to *topic* in order; return once every one has a PubAck.

        Raises:
            PublishError: when some message has no PubAck after the retries; publishing the
                same envelopes again is safe (the broker drops known ids).
            BusClosedError: when the bus is not started or was closed.
            ValueError: for an invalid topic (empty token, wildcard).
        """
        self._context()
        subject, token = self.naming.subject(topic), self.naming.stream_token(topic)
        if not envelopes:
            return
        progress = _Progress()
        with publish_span(topic, len(envelopes), headers, causes) as carriers:
            try:
                async for attempt in stamina.retry_context(
                    on=UnconfirmedPublishError,
                    attempts=_PUBLISH_ATTEMPTS,
                    timeout=self.options.timeout * (_PUBLISH_ATTEMPTS + 1),
                    wait_initial=min(0.1, self.options.reconnect_wait),
                    wait_max=self.options.reconnect_wait * 2,
                    wait_jitter=self.options.reconnect_wait,
                ):
                    with attempt:
                        await self._publish_from(token, subject, envelopes, carriers, progress)
            except (UnconfirmedPublishError, RejectedPublishError) as err:
                msg = f"publishing {len(envelopes)} message(s) to {topic!r} failed: {err}"
                raise PublishError(msg) from err
        self.metrics.count(topic, "", "published", len(envelopes) - progress.duplicates)
        self.metrics.count(topic, "", "duplicate_skipped", progress.duplicates)

    async def _publish_from(
        self,
        token: str,
        subject: str,
        envelopes: Sequence[Envelope],
        carriers: Carriers,
        progress: _Progress,
    ) -> None:
        """Pipeline ``envelopes[progress.start:]`` and wait for all their PubAcks."""
        nc, _ = self._context()
        assert self._pipeline is not None  # set together with the connection
        pipeline, start, futures = self._pipeline, progress.start, []
        try:
            await self._ensure_stream(token)
            if not nc.is_connected:
                raise UnconfirmedPublishError("not connected to NATS (reconnecting)", start, 0)
            for index in range(start, len(envelopes)):
                envelope = envelopes[index]
                message_headers = {**carriers.of(index), MSG_ID_HEADER: envelope.id}
                if envelope.correlation_id:
                    message_headers.setdefault(CORRELATION_HEADER, envelope.correlation_id)
                payload = encode_envelope(envelope)
                futures.append(await pipeline.send(subject, payload, message_headers))
            await asyncio.wait(futures, timeout=self.options.timeout)
            progress.duplicates += count_duplicates(futures, start)
        except UnconfirmedPublishError as err:
            progress.start, progress.duplicates = err.index, progress.duplicates + err.duplicates
            self._streams.discard(token)  # re-create it if it vanished (no responders)
            raise
        except nats.errors.ConnectionClosedError as err:
            raise BusClosedError("the NATS connection was closed while publishing") from err
        except NATS_ERRORS as err:  # resend all from progress.start: the broker drops dupes
            self._streams.discard(token)
            raise UnconfirmedPublishError(repr(err), progress.start, 0) from err
        finally:
            pipeline.abandon(futures)

    async def subscribe(
        self, topic: str, durable: str, config: ConsumerConfig | None = None
    ) -> JetStreamSubscription:
        """Create or bind the durable pull consumer *durable* on *topic* (or ``"<stream>.>"``).

        Raises:
            SubscribeError: when the consumer cannot be created, or *durable* already exists
                on this stream for another topic.
            BusClosedError: when the bus is not started or was closed.
            ValueError: for an invalid topic or durable name.
        """
        nc, js = self._context()
        config = config or ConsumerConfig()
        filter_subject = self.naming.subject(topic, wildcard=True)
        check_durable_name(durable)
        try:
            stream = await self._ensure_stream(self.naming.stream_token(topic))
            try:
                existing = await js.consumer_info(stream, durable)
            except nats.js.errors.NotFoundError:
                existing = None
            if existing is not None and existing.config.filter_subject != filter_subject:
                msg = f"durable {durable!r} is bound to {existing.config.filter_subject!r}"
                raise SubscribeError(msg)
            await js.add_consumer(
                stream,
                api.ConsumerConfig(
                    durable_name=durable,
                    ack_policy=api.AckPolicy.EXPLICIT,
                    ack_wait=config.ack_wait,
                    max_deliver=-1,  # dead-lettering is done by fetch, see the module docstring
                    filter_subject=filter_subject,
                    deliver_policy=api.DeliverPolicy.ALL,
                    max_ack_pending=MAX_ACK_PENDING,
                ),
            )
            inbox = PullInbox(nc, stream, durable)
            await inbox.open()
        except NATS_ERRORS as err:
            msg = f"cannot subscribe {durable!r} to {topic!r}: {err!r}"
            raise SubscribeError(msg) from err
        return JetStreamSubscription(self, topic, durable, stream, config, inbox)
