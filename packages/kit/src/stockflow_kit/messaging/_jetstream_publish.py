"""Pipelined JetStream publishing: send many messages, then collect their PubAcks.

Each message is sent with its own reply subject (``<inbox>.<n>``) on one wildcard
subscription; the PubAck (or error) comes back there. This is what nats-py's
``publish_async`` does, without its per-message semaphore, NUID and ``PubAck`` dataclass,
which made it about 40 % slower on 1000-message batches.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Final

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as CoreSubscription

__all__ = ["PubAckPipeline", "RejectedPublishError", "UnconfirmedPublishError", "count_duplicates"]

_NO_RESPONDERS: Final = "503"


class UnconfirmedPublishError(Exception):
    """Message :attr:`index` (and maybe later ones) has no PubAck: retry from there.

    Internal: the bus retries it, then raises :class:`~stockflow_kit.messaging.bus.PublishError`.
    """

    def __init__(self, detail: str, index: int, duplicates: int) -> None:
        super().__init__(f"message {index} unconfirmed: {detail}")
        self.index, self.duplicates = index, duplicates


class RejectedPublishError(Exception):
    """The stream refused message :attr:`index` (an API error other than 503): final.

    Internal: the bus raises :class:`~stockflow_kit.messaging.bus.PublishError` at once.
    """

    def __init__(self, detail: str, index: int) -> None:
        super().__init__(f"message {index} rejected: {detail}")
        self.index = index


class PubAckPipeline:
    """Reply inbox and in-flight PubAcks of one connection.

    Args:
        nc: The connected core client.
    """

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._sent = 0
        self._sub: CoreSubscription | None = None

    async def open(self) -> None:
        """Subscribe to the reply inbox."""
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.pop(msg.subject, None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def send(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Msg]:
        """Publish one message; return the future of its PubAck reply."""
        self._sent += 1
        reply = f"{self._inbox}.{self._sent}"
        future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
        self._waiting[reply] = future
        await self._nc.publish(subject, payload, reply=reply, headers=headers)
        return future

    def abandon(self, futures: Sequence[asyncio.Future[Msg]]) -> None:
        """Stop waiting for the PubAcks of *futures* (cancel those still pending)."""
        pending = {future for future in futures if not future.done()}
        for future in pending:
            future.cancel()
        if pending:
            self._waiting = {r: f for r, f in self._waiting.items() if f not in pending}


def count_duplicates(futures: Sequence[asyncio.Future[Msg]], start: int) -> int:
    """Return how many of *futures*' PubAcks say "duplicate".

    Raises:
        UnconfirmedPublishError: for the first message without a PubAck (not answered in time,
            no stream listening, or a 503), carrying its index (*start* + offset).
        RejectedPublishError: for the first message the stream refused.
    """
    duplicates = 0
    for offset, future in enumerate(futures):
        index = start + offset
        if not future.done() or future.cancelled():
            raise UnconfirmedPublishError("no PubAck in time", index, duplicates)
        reply = future.result()
        if _status(reply.headers) == _NO_RESPONDERS:
            raise UnconfirmedPublishError("no stream answered (503)", index, duplicates)
        answer = json.loads(reply.data)
        error = answer.get("error")
        if error is not None:
            if error.get("code") == 503:
                raise UnconfirmedPublishError(f"stream unavailable: {error}", index, duplicates)
            raise RejectedPublishError(str(error), index)
        duplicates += bool(answer.get("duplicate"))
    return duplicates


def _status(headers: Mapping[str, str] | None) -> str | None:
    return headers.get("Status") if headers else None
