"""The durable pull subscription of :class:`~stockflow_kit.messaging.jetstream.JetStreamBus`.

Fetch hands out deliveries and dead-letters what is past ``max_deliver`` (see the
:mod:`~stockflow_kit.messaging.jetstream` docstring); ack and nak are pipelined, with the
last one of a call sent as a request whose reply confirms them all.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from stockflow_kit.messaging._dead_lettered import DeadLettered
from stockflow_kit.messaging._jetstream_pull import PullInbox
from stockflow_kit.messaging._telemetry import dead_letter_headers, log_dead_lettered
from stockflow_kit.messaging.bus import (
    ACK_WAIT_EXPIRED_REASON,
    DEAD_LETTER_PREFIX,
    AckError,
    BusClosedError,
    ConsumerConfig,
    ConsumerLag,
    Delivery,
    MessagingError,
    dead_letter_topic,
)
from stockflow_kit.messaging.envelope import decode_envelope

if TYPE_CHECKING:
    from stockflow_kit.messaging.jetstream import JetStreamBus

__all__ = ["MSG_ID_HEADER", "NATS_ERRORS", "JetStreamSubscription"]

MSG_ID_HEADER: Final = "Nats-Msg-Id"
NATS_ERRORS: Final = (nats.errors.Error, OSError, TimeoutError)
"""What nats-py raises for connection, protocol, timeout and JetStream API failures."""
_REMEMBERED_REASONS: Final = 10_000
_log = structlog.get_logger("stockflow_kit.messaging")


class JetStreamSubscription:
    """A durable pull consumer of a :class:`JetStreamBus` (made by ``subscribe``)."""

    def __init__(
        self,
        bus: JetStreamBus,
        topic: str,
        name: str,
        stream: str,
        config: ConsumerConfig,
        inbox: PullInbox,
    ) -> None:
        self._bus, self._name, self._stream, self._config = bus, name, stream, config
        self._inbox = inbox
        self._filter = bus.naming.subject(topic, wildcard=True)
        self._reasons: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._dead_lettered = DeadLettered(lambda delivery: _message(delivery).reply)
        self._closed = False

    @property
    def name(self) -> str:
        """The durable name."""
        return self._name

    def _context(self) -> tuple[NATS, JetStreamContext]:
        if self._closed:
            raise BusClosedError(f"subscription {self._name!r} was closed")
        return self._bus._context()

    async def fetch(self, max_messages: int = 100, max_wait: float = 1.0) -> Sequence[Delivery]:
        """Pull up to *max_messages*; dead-letter those past ``max_deliver`` instead.

        Returns ``[]`` when nothing arrived within *max_wait*, also while disconnected.
        """
        self._context()
        deadline = time.monotonic() + max_wait
        while True:
            try:
                messages = await self._inbox.pull(max_messages, deadline - time.monotonic())
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as err:
                raise BusClosedError("the NATS connection is closed") from err
            except nats.errors.OutboundBufferLimitError:
                return []  # disconnected with a full outgoing buffer: nothing was asked for
            except NATS_ERRORS as err:
                raise MessagingError(f"cannot fetch for {self._name!r}: {err!r}") from err
            deliveries = await self._deliveries(messages)
            if deliveries or not messages or time.monotonic() >= deadline:
                break  # else all were dead-lettered: wait on for live ones
        if deliveries:
            self._bus.metrics.count_fetched(deliveries, self._name)
        return deliveries

    async def _deliveries(self, messages: Sequence[Msg]) -> list[Delivery]:
        deliveries: list[Delivery] = []
        topic_of, max_deliver = self._bus.naming.topic, self._config.max_deliver
        for msg in messages:
            count = _delivery_count(msg.reply)
            try:
                envelope = decode_envelope(msg.data)
            except msgspec.DecodeError as err:
                await self._dead_letter(msg, count, f"undecodable envelope: {err}")
                continue
            if count > max_deliver:
                reason = self._reasons.pop(envelope.id, ACK_WAIT_EXPIRED_REASON)
                await self._dead_letter(msg, count - 1, reason, envelope.id)
                continue
            headers = msg.headers or {}
            deliveries.append(Delivery(envelope, topic_of(msg.subject), count, headers, msg))
        return deliveries

    async def dead_letter(self, deliveries: Sequence[Delivery], *, reason: str) -> None:
        """Publish *deliveries* to ``deadletter.<stream>`` (PubAck awaited), then ``+TERM``.

        Raises:
            AckError: when one could not be published; it and the rest stay in flight.
        """
        for delivery in deliveries:
            msg = _message(delivery)
            if not await self._dead_letter(
                msg, delivery.delivery_count, reason, delivery.envelope.id
            ):
                msg_id = delivery.envelope.id
                raise AckError(f"message {msg_id!r} of {self._name!r} was not dead-lettered")
            self._reasons.pop(delivery.envelope.id, None)
            self._dead_lettered.add(delivery)

    async def _dead_letter(
        self, msg: Msg, delivery_count: int, reason: str, message_id: str | None = None
    ) -> bool:
        """Dead-letter *msg*; tell whether it was (else it stays unacked and comes back)."""
        bus, topic = self._bus, self._bus.naming.topic(msg.subject)
        message_id = message_id or f"{self._stream}#{_stream_sequence(msg.reply)}"
        headers = dead_letter_headers(
            msg.headers or {},
            topic=topic,
            subscription=self._name,
            delivery_count=delivery_count,
            reason=reason,
        )
        headers[MSG_ID_HEADER] = f"{self._name}:{message_id}"  # one copy per subscription
        nc, js = self._context()
        try:
            await bus._ensure_stream(DEAD_LETTER_PREFIX)
            subject = bus.naming.subject(dead_letter_topic(topic))
            await js.publish(subject, msg.data, headers=headers)
            await nc.publish(msg.reply, b"+TERM")  # if lost: dead-lettered again, deduped
        except NATS_ERRORS as err:
            _log.error(
                "messaging.dead_letter_failed",
                topic=topic,
                subscription=self._name,
                message_id=message_id,
                error=repr(err),
            )
            return False  # stays unacked: redelivered after ack_wait, dead-lettered then
        log_dead_lettered(
            bus.metrics,
            topic=topic,
            subscription=self._name,
            message_id=message_id,
            delivery_count=delivery_count,
            reason=reason,
        )
        return True

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Ack *deliveries*; returns once the server confirmed processing them.

        Raises:
            AckError: when that could not be confirmed; they may be redelivered.
        """
        deliveries = self._dead_lettered.without(deliveries)
        await self._settle(deliveries, b"+ACK")
        if self._reasons:
            for delivery in deliveries:
                self._reasons.pop(delivery.envelope.id, None)
        self._bus.metrics.count_deliveries(deliveries, self._name, "acked")

    async def nak(
        self, deliveries: Sequence[Delivery], *, delay: float = 0.0, reason: str | None = None
    ) -> None:
        """Ask for redelivery after *delay* s; remember *reason* for the dead-letter headers.

        Raises:
            AckError: when the server did not confirm; they come back after ``ack_wait``.
        """
        deliveries = self._dead_lettered.without(deliveries)
        if reason is not None:
            for delivery in deliveries:
                self._reasons[delivery.envelope.id] = reason
                self._reasons.move_to_end(delivery.envelope.id)
            while len(self._reasons) > _REMEMBERED_REASONS:
                self._reasons.popitem(last=False)
        payload = b"-NAK"
        if delay > 0:
            payload += b' {"delay": %d}' % int(delay * 1_000_000_000)
        await self._settle(deliveries, payload)
        self._bus.metrics.count_deliveries(deliveries, self._name, "nakked")

    async def _settle(self, deliveries: Sequence[Delivery], payload: bytes) -> None:
        nc, _ = self._context()
        if not deliveries:
            return
        if not nc.is_connected:
            raise AckError("not connected to NATS; the messages will be redelivered")
        replies = [_message(delivery).reply for delivery in deliveries]
        try:
            for reply in replies[:-1]:
                await nc.publish(reply, payload)
            await nc.request(replies[-1], payload, timeout=self._bus.options.timeout)
        except NATS_ERRORS as err:
            msg = f"{payload[:4].decode()} of {len(replies)} message(s) not confirmed: {err!r}"
            raise AckError(msg) from err

    async def lag(self) -> ConsumerLag:
        """Unacked messages (``num_pending + num_ack_pending``) and the oldest one's age.

        The age is that of the first message of the topic after the consumer's ack floor,
        read from the stream (best effort: 0.0 if it cannot be read).

        Raises:
            MessagingError: when the consumer info cannot be read.
        """
        _, js = self._context()
        try:
            info = await js.consumer_info(self._stream, self._name)
        except NATS_ERRORS as err:
            msg = f"cannot read the lag of {self._name!r}: {err!r}"
            raise MessagingError(msg) from err
        pending = (info.num_pending or 0) + (info.num_ack_pending or 0)
        if pending == 0:
            return ConsumerLag(pending=0, oldest_age_seconds=0.0)
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        try:
            oldest = await js.get_msg(self._stream, seq=floor + 1, subject=self._filter, next=True)
        except NATS_ERRORS:  # purged, or the server went away: the count is still right
            return ConsumerLag(pending=pending, oldest_age_seconds=0.0)
        age = time.time() - oldest.time.timestamp() if oldest.time else 0.0
        return ConsumerLag(pending=pending, oldest_age_seconds=max(age, 0.0))

    async def close(self) -> None:
        """Stop consuming; deliveries received but not handed out are nakked back."""
        if self._closed:
            return
        self._closed = True
        nc = self._bus._nc
        try:
            leftovers = await self._inbox.close()
            if nc is not None and nc.is_connected:
                for msg in leftovers:
                    await nc.publish(msg.reply, b"-NAK")
        except NATS_ERRORS:
            pass  # the connection is gone: the server redelivers after ack_wait anyway


def _delivery_count(reply: str) -> int:
    """Read ``num_delivered`` from a ``$JS.ACK`` reply subject (v1: 9 tokens, v2: 12)."""
    tokens = reply.split(".")
    return int(tokens[4] if len(tokens) == 9 else tokens[6])


def _stream_sequence(reply: str) -> int:
    """Read the stream sequence from a ``$JS.ACK`` reply subject."""
    tokens = reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


def _message(delivery: Delivery) -> Msg:
    token = delivery.token
    if not isinstance(token, Msg):
        msg = f"not a delivery of a JetStream bus: {delivery!r}"
        raise TypeError(msg)
    return token
