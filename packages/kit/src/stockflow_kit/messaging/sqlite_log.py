"""The embedded bus: a durable append-only log in one SQLite file.

``SqliteLogBus("sqlite:///data/bus.sqlite3")`` (relative path; ``sqlite:////abs/path`` for an
absolute one) keeps every message, durable position and in-flight delivery in the file (WAL),
so it survives restarts of the process, and several processes may open the same file.
The tables and the claim algorithm are described in :mod:`._sqlite_store`:

* **publish** is one ``executemany`` in one transaction per call; a partial unique index on
  ``(stream, envelope id)`` drops duplicates. The dedupe window is the retention of the log:
  forever, unless :meth:`SqliteLogBus.trim` deletes old messages (then ids older than the trim
  cutoff may be published again); :mod:`~stockflow_kit.messaging.retention` schedules it.
* **fetch** claims in one ``BEGIN IMMEDIATE`` transaction: due redeliveries first (moving those
  past ``max_deliver`` to ``deadletter.<stream>``), then new rows after the consumer's cursor,
  recording one in-flight row each. **ack** deletes in-flight rows, **nak** makes them due.
* **waiting**: a fetch that found nothing sleeps until something may have changed, instead of
  polling: publishes, naks and dead letters of the same bus wake it at once; commits by other
  processes are noticed by one watch per bus reading ``PRAGMA data_version`` every
  ``poll_interval`` seconds (5 ms) while the file is busy, less often the longer it is quiet
  (5 % of the quiet time), at most every ``max_poll_interval`` (0.5 s; formula in
  :mod:`._sqlite_watch`); and it wakes by itself
  when the next in-flight delivery's ``ack_wait`` expires. Woken with nothing new (no wake,
  no expiry since its last empty claim), it does not claim again, so an idle consumer costs
  neither a transaction per ``max_wait`` nor a query per poll.

SQL runs inline on the event loop by default: one claim or ack of 1,000 messages takes a few
milliseconds, and a worker thread adds a context switch per call and contends for the GIL,
which measured slower at every batch size (``stockflow bench bus``). Pass ``offload=True`` (or
``?offload=1`` in the URL) to run it on one dedicated thread instead, when another process may
hold the write lock for long (waits of up to ``busy_timeout`` would otherwise block the loop).

Durability: ``synchronous=NORMAL`` by default (WAL: safe against process crashes; a power
loss may lose the last commits, as JetStream acknowledges before it fsyncs); use
``?synchronous=FULL`` to fsync every commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import ParamSpec, TypeVar
from urllib.parse import parse_qs, urlsplit

import msgspec
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging._sqlite_store import SqliteStore, connect
from stockflow_kit.messaging._sqlite_subscription import SqliteLogSubscription
from stockflow_kit.messaging._sqlite_watch import DataVersionWatch
from stockflow_kit.messaging._telemetry import bus_metrics, publish_span
from stockflow_kit.messaging._wakeup import Wakeup
from stockflow_kit.messaging.bus import (
    BusClosedError,
    ConsumerConfig,
    MessagingError,
    PublishError,
    SubscribeError,
    stream_of,
)
from stockflow_kit.messaging.envelope import Envelope, encode_envelope

__all__ = ["SqliteLogBus", "SqliteLogSubscription"]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_encode_headers = msgspec.json.Encoder().encode
_decode_headers = msgspec.json.Decoder(dict[str, str]).decode


class SqliteLogBus:
    """A :class:`~stockflow_kit.messaging.bus.Bus` on one SQLite file.

    Args:
        url: ``sqlite:///<path>``; query options ``synchronous`` (``NORMAL``/``FULL``),
            ``offload`` (``1`` to run SQL on a dedicated thread), ``poll_interval`` and
            ``max_poll_interval``.
        registry: Prometheus registry for the messaging metrics (default registry if ``None``).
        offload: Run SQL on a dedicated thread; overrides the URL option.
        poll_interval: Seconds between checks for commits of other processes while the file
            is busy (default 0.005).
        max_poll_interval: The longest interval between those checks, reached while the file
            is idle: the most a message from another process waits (default 0.5).
        busy_timeout: Seconds to wait for another process's write lock before failing.
    """

    def __init__(
        self,
        url: str,
        *,
        registry: CollectorRegistry | None = None,
        offload: bool | None = None,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        busy_timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "sqlite" or parts.path in {"", "/"}:
            msg = f"not a sqlite:///<path> URL: {url!r}"
            raise ValueError(msg)
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.path = parts.path[1:]
        self.synchronous = options.get("synchronous", "NORMAL").upper()
        if self.synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            msg = f"unsupported synchronous={self.synchronous!r} in {url!r}"
            raise ValueError(msg)
        self.offload = offload if offload is not None else options.get("offload") == "1"
        self.poll_interval = poll_interval or float(options.get("poll_interval", 0.005))
        self.max_poll_interval = max_poll_interval or float(options.get("max_poll_interval", 0.5))
        self.metrics = bus_metrics(registry)
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._store: SqliteStore | None = None
        self._watch: DataVersionWatch | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._wakeup = Wakeup()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the file (creating it and the tables if missing). Idempotent."""
        if self._store is not None:
            return
        if self.offload:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, "sqlite-log-bus")
        try:
            conn = await self.execute(
                connect,
                self.path,
                synchronous=self.synchronous,
                busy_timeout_ms=self._busy_timeout_ms,
            )
            store = SqliteStore(conn)
            await self.execute(store.create_schema)
            watch = DataVersionWatch(
                connect(
                    self.path, synchronous=self.synchronous, busy_timeout_ms=self._busy_timeout_ms
                ),
                self.wake,
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
            )
        except sqlite3.Error as error:
            msg = f"cannot open the bus log {self.path!r}: {error}"
            raise MessagingError(msg) from error
        self._store, self._watch = store, watch
        watch.start()

    async def close(self) -> None:
        """Close the file; waiting fetches raise :class:`BusClosedError`. Idempotent."""
        store, watch, executor = self._store, self._watch, self._executor
        self._store = self._watch = self._executor = None
        self.wake()
        if watch is not None:
            await watch.stop()
            watch.conn.close()
        if store is not None:
            if executor is not None:
                await asyncio.get_running_loop().run_in_executor(executor, store.conn.close)
            else:
                store.conn.close()
        if executor is not None:
            executor.shutdown(wait=False)

    def store(self) -> SqliteStore:
        """Return the open store, or raise :class:`BusClosedError`."""
        if self._store is None:
            raise BusClosedError(f"the bus log {self.path!r} is not open")
        return self._store

    async def execute(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run a store method inline, or on the SQL thread when ``offload`` is set."""
        if self._executor is None:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    # ------------------------------------------------------------------ waiting
    def wake(self) -> None:
        """Wake every fetch of this bus that waits for messages."""
        self._wakeup.wake()

    async def wait(self, seconds: float) -> bool:
        """Wait up to *seconds* for :meth:`wake`; tell whether it came."""
        return await self._wakeup.wait(seconds)

    @property
    def generation(self) -> int:
        """Changes each time waiting fetches are woken (see :class:`._wakeup.Wakeup`)."""
        return self._wakeup.generation

    # ------------------------------------------------------------------ the port
    async def publish(
        self,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        headers: Mapping[str, str] | None = None,
        causes: Sequence[str | None] | None = None,
    ) -> None:
        """Append *envelopes* to *topic* in one transaction; known ids are skipped."""
        store = self.store()
        if not envelopes:
            return
        stream = stream_of(topic)
        with publish_span(topic, len(envelopes), headers, causes) as carriers:
            raw_headers = _encode_headers(carriers.shared) if carriers.shared else None
            now = time.time()
            if carriers.each is None:
                rows = [
                    (stream, topic, e.id, now, raw_headers, encode_envelope(e)) for e in envelopes
                ]
            else:
                rows = [
                    (
                        stream,
                        topic,
                        e.id,
                        now,
                        _encode_headers(h) if h else None,
                        encode_envelope(e),
                    )
                    for e, h in zip(envelopes, carriers.each, strict=True)
                ]
            try:
                added = await self.execute(store.append, rows)
            except sqlite3.Error as error:
                msg = f"publishing {len(rows)} messages to {topic!r} failed: {error}"
                raise PublishError(msg) from error
        self.metrics.count(topic, "", "published", added)
        self.metrics.count(topic, "", "duplicate_skipped", len(rows) - added)
        self.wake()

    async def subscribe(
        self, topic: str, durable: str, config: ConsumerConfig | None = None
    ) -> SqliteLogSubscription:
        """Create or bind the durable subscription *durable* on *topic*."""
        store, stream = self.store(), stream_of(topic)
        try:
            consumer, pattern = await self.execute(store.bind, stream, durable, topic)
        except sqlite3.Error as error:
            msg = f"cannot bind {durable!r} on {topic!r}: {error}"
            raise SubscribeError(msg) from error
        if pattern != topic:
            msg = f"durable {durable!r} is bound to {pattern!r}, not {topic!r}"
            raise SubscribeError(msg)
        return SqliteLogSubscription(self, durable, consumer, topic, config or ConsumerConfig())

    async def trim(self, older_than: float, *, now: float | None = None) -> int:
        """Delete messages older than *older_than* seconds that no durable still needs.

        A message is kept while any durable subscription of its stream has not passed it or
        holds it in flight. Trimming ends the dedupe window for the deleted ids. Schedule it
        with :class:`~stockflow_kit.messaging.retention.Retention`.

        Args:
            older_than: The retention window in seconds.
            now: The current time in Unix seconds; :func:`time.time` when ``None``.

        Returns:
            How many messages were deleted.
        """
        store = self.store()
        cutoff = (time.time() if now is None else now) - older_than
        try:
            return await self.execute(store.trim, cutoff)
        except sqlite3.Error as error:
            msg = f"trimming the bus log {self.path!r} failed: {error}"
            raise MessagingError(msg) from error
