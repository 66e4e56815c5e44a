"""Group commit: many callers' writes, one transaction, one fsync.

A store that makes every commit durable (SQLite with ``synchronous=FULL``, PostgreSQL with
``synchronous_commit=on``) pays a disk flush per transaction; with one writer (SQLite) those
flushes queue one behind another, so a service committing once per request is bounded by the
disk's flush rate whatever its CPU. :class:`GroupCommit` turns the requests that wait at the
same moment into one batch::

    placements = GroupCommit("placements", commit_placements, max_batch=256)

    async def place(request: Placement) -> Placed:
        return await placements.submit(request)  # answered once its batch has committed

    async def commit_placements(batch: Sequence[Placement]) -> Sequence[Placed]:
        async with unit_of_work() as uow:
            ...  # write every item of the batch
            await uow.commit()
        return [...]  # one result per item, in order

One task takes the first waiting item and every other one waiting (up to *max_batch*), calls
``commit(batch)`` once and answers each caller with its result; callers that arrive meanwhile
form the next batch. With one caller at a time a batch is that caller alone: no timer, no
added latency. If ``commit`` raises, every caller of that batch gets the exception (nothing of
the batch was committed, if ``commit`` is one transaction); the next batch is tried as usual.

A lifecycle component: :meth:`start` starts the task; :meth:`stop` commits what is queued,
then ends it (later :meth:`submit` calls raise :class:`GroupCommitStoppedError`). Metrics:
``group_commit_batch_size{group}`` (items per commit) and
``group_commit_duration_seconds{group}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry

from stockflow_kit.observability.metrics import histogram

__all__ = ["GroupCommit", "GroupCommitStoppedError"]

T = TypeVar("T")
R = TypeVar("R")

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class GroupCommitStoppedError(RuntimeError):
    """:meth:`GroupCommit.submit` while the group is not running (map it to a 503)."""


class GroupCommit(Generic[T, R]):
    """Commit the items of concurrent callers together; see the module docstring.

    Args:
        name: The group's name in metrics, logs and readiness.
        commit: Writes a batch in one transaction and returns one result per item, in order.
        max_batch: The most items one ``commit`` call gets.
        registry: Prometheus registry of the metrics (the default registry when ``None``).
    """

    def __init__(
        self,
        name: str,
        commit: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 256,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._name, self._commit, self.max_batch = name, commit, max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._sizes = histogram(
            "group_commit_batch_size",
            "Items written by one group commit.",
            ("group",),
            registry=registry,
            buckets=_BATCH_BUCKETS,
        ).labels(name)
        self._seconds = histogram(
            "group_commit_duration_seconds",
            "Duration of one group commit.",
            ("group",),
            registry=registry,
        ).labels(name)

    @property
    def name(self) -> str:
        return self._name

    async def submit(self, item: T) -> R:
        """Queue *item*; return its result once its batch has committed.

        Raises:
            GroupCommitStoppedError: the group is not running (not started, or stopping).
            Exception: whatever ``commit`` raised for the item's batch.
        """
        if self._task is None or self._closed:
            raise GroupCommitStoppedError(f"group commit {self._name!r} is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def start(self) -> None:
        if self._task is None:
            self._closed = False
            self._task = asyncio.create_task(self._run(), name=f"group-commit:{self._name}")

    async def stop(self) -> None:
        """Commit what is queued, then end the task. Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closed = True
        self._queue.put_nowait(None)
        await task

    async def readiness(self) -> str | None:
        if self._task is None:
            return f"{self._name}: not started"
        if self._task.done():
            return f"{self._name}: stopped"
        return None

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            ending = False
            while len(batch) < self.max_batch and not self._queue.empty():
                waiting = self._queue.get_nowait()
                if waiting is None:
                    ending = True
                    break
                batch.append(waiting)
            await self._write(batch)
            if ending:
                while not self._queue.empty():  # submitted before stop(): still answered
                    rest = self._queue.get_nowait()
                    if rest is not None:
                        await self._write([rest])
                return

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        started = time.perf_counter()
        try:
            results = await self._commit([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(
                    f"group commit {self._name!r}: {len(results)} results for {len(batch)} items"
                )
        except Exception as error:  # every caller of the batch hears of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        finally:
            self._seconds.observe(time.perf_counter() - started)
            self._sizes.observe(len(batch))
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
