"""Pull requests of one JetStream durable consumer, on core NATS.

nats-py's ``PullSubscription.fetch`` waits for a whole batch until its timeout once a lingering
request has begun, and can hand out more than the batch from its buffer, so the kit speaks the
pull protocol itself (``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>``):

1. a ``no_wait`` request for up to *n* messages: the server sends what is there, then a
   ``404``/``408`` status (unless it sent all *n*);
2. if nothing came, one lingering request for **one** message that expires with the caller's
   ``max_wait``; it ends with that message or with a ``408``;
3. after that first message, another ``no_wait`` request for the rest of the batch.

Every request has its own reply subject (``<inbox>.<request id>``) so a status is matched
to its request. Deliveries carry their own ``$JS.ACK`` reply; one that arrives after its
``fetch`` gave up (a request the server answered late) is kept and handed out by the next
``fetch``: it was delivered, so dropping it would only delay it by ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Final

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as CoreSubscription

__all__ = ["PullInbox"]

_ACK_PREFIX: Final = "$JS.ACK."
_STATUS_GRACE: Final = 0.25
"""Seconds a request's answer may take past the caller's ``max_wait`` (e.g. the 408 of a
lingering request that expires exactly then)."""


class PullInbox:
    """The reply inbox and request sequence of one durable pull consumer.

    Args:
        nc: The connected core client.
        stream: The stream name.
        durable: The durable consumer name.
        api_prefix: The JetStream API prefix (``$JS.API``).
    """

    def __init__(self, nc: NATS, stream: str, durable: str, api_prefix: str = "$JS.API") -> None:
        self._nc = nc
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._sub: CoreSubscription | None = None
        self._buffer: collections.deque[Msg] = collections.deque()
        self._finished: set[int] = set()
        self._request_id = 0
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Subscribe to the inbox."""
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_message)

    async def close(self) -> list[Msg]:
        """Unsubscribe; return the deliveries that arrived but were never handed out."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()
        leftovers = list(self._buffer)
        self._buffer.clear()
        return leftovers

    async def _on_message(self, msg: Msg) -> None:
        if msg.reply.startswith(_ACK_PREFIX):
            self._buffer.append(msg)
        else:  # a status (404 no messages, 408 request expired, 409 ...) ends its request
            _, _, request_id = msg.subject.rpartition(".")
            if request_id.isdigit():
                self._finished.add(int(request_id))
        self._changed.set()

    async def pull(self, max_messages: int, max_wait: float) -> list[Msg]:
        """Return up to *max_messages* deliveries, waiting at most about *max_wait* s for one.

        While the connection is down nothing is requested: it waits out *max_wait* (so a
        fetch loop does not spin) and returns what was already buffered, usually ``[]``.

        Raises:
            nats.errors.Error: when a request cannot be sent (closed connection, full buffer).
        """
        if max_messages < 1:
            msg = f"max_messages must be at least 1, not {max_messages}"
            raise ValueError(msg)
        async with self._lock:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max(max_wait, 0.0)
            out = self._take(max_messages)
            if len(out) < max_messages and self._nc.is_connected:
                # A round trip even when max_wait is 0: the answer ends it, not the clock.
                answered_by = max(deadline, loop.time() + _STATUS_GRACE)
                out += await self._request(max_messages - len(out), answered_by, expires=None)
            remaining = deadline - loop.time()
            if not out and remaining > 0.001:
                if not self._nc.is_connected:
                    await self._wait_changed(remaining)
                    return self._take(max_messages)
                out += await self._request(1, deadline + _STATUS_GRACE, expires=remaining)
                if out and len(out) < max_messages:
                    rest_deadline = max(deadline, loop.time() + _STATUS_GRACE)
                    out += await self._request(max_messages - len(out), rest_deadline, expires=None)
            return out

    async def _request(self, batch: int, deadline: float, *, expires: float | None) -> list[Msg]:
        self._request_id += 1
        request_id = self._request_id
        self._finished = {r for r in self._finished if r > request_id - 8}
        body: dict[str, object] = {"batch": batch}
        if expires is None:
            body["no_wait"] = True
        else:
            body["expires"] = int(expires * 1_000_000_000)
        await self._nc.publish(
            self._next_subject, json.dumps(body).encode(), reply=f"{self._inbox}.{request_id}"
        )
        loop = asyncio.get_running_loop()
        while len(self._buffer) < batch and request_id not in self._finished:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await self._wait_changed(remaining)
        self._finished.discard(request_id)
        return self._take(batch)

    async def _wait_changed(self, seconds: float) -> None:
        self._changed.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            pass

    def _take(self, limit: int) -> list[Msg]:
        buffer = self._buffer
        return [buffer.popleft() for _ in range(min(limit, len(buffer)))]
