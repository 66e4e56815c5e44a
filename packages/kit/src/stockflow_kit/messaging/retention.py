"""Retention: trim the embedded log and purge inboxes on a schedule, explicitly.

Nothing in the kit deletes messages or processed ids by itself. A deployment that wants
bounded storage starts one :class:`Retention` task with the jobs it needs::

    retention = Retention(
        [
            log_trim(bus, window=DEFAULT_LOG_RETENTION),
            sqlite_inbox_purge(inbox, conn, window=7 * DAY),
        ],
        interval=DEFAULT_INTERVAL,
    )
    task = asyncio.create_task(retention.run())  # cancel it on shutdown

Every round runs each job once with the same "now" and logs what it removed
(``messaging.retention_ran``) and counts it (``messaging_retention_removed_total{job}``). A
failing job is logged (``messaging.retention_failed``), counted
(``messaging_retention_failures_total{job}``) and retried next round; the others still run.
For SQLAlchemy inboxes the job is
:func:`~stockflow_kit.messaging.sqlalchemy.sqlalchemy_inbox_purge`.

The windows must line up, or dedupe has a hole (ADR 0001 "Retention", ADR 0004): a consumer
that is reset or recreated replays whatever the log still holds, so the processed ids of its
inbox must outlive the log's messages. :func:`check_retention_windows` enforces::

    processed_retention >= log_retention + interval + margin

(a trim run can be up to one ``interval`` late; ``margin`` covers the redelivery horizon,
``max_deliver`` × ``ack_wait``, and clock skew).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import structlog
from prometheus_client import CollectorRegistry

from stockflow_kit.observability.metrics import counter

if TYPE_CHECKING:
    import sqlite3

    import asyncpg

    from stockflow_kit.messaging.inbox import PostgresInbox, SqliteInbox
    from stockflow_kit.messaging.sqlite_log import SqliteLogBus

__all__ = [
    "DAY",
    "DEDUPE_MARGIN",
    "DEFAULT_INTERVAL",
    "DEFAULT_LOG_RETENTION",
    "Retention",
    "RetentionJob",
    "check_retention_windows",
    "log_trim",
    "postgres_inbox_purge",
    "sqlite_inbox_purge",
]

DAY: Final = 86_400.0
"""Seconds in a day."""

DEFAULT_LOG_RETENTION: Final = 6 * DAY
"""How long :class:`~stockflow_kit.messaging.sqlite_log.SqliteLogBus` keeps a message that
every durable has passed: 6 days, so that it is gone before a 7-day processed-id window
(the inventory's default) forgets its id."""

DEFAULT_INTERVAL: Final = 3600.0
"""Seconds between retention rounds."""

DEDUPE_MARGIN: Final = 3600.0
"""Slack between the log's retention and the processed ids' (redelivery horizon, skew)."""

_log = structlog.get_logger("stockflow_kit.messaging")


@dataclass(frozen=True, slots=True)
class RetentionJob:
    """One thing to clean up.

    Args:
        name: The ``job`` label of the metrics and log lines.
        window: Seconds a record is kept (for the log line; *remove* applies it).
        remove: Called with the current time in Unix seconds; deletes what is older than
            ``now - window`` and returns how many records it deleted.
    """

    name: str
    window: float
    remove: Callable[[float], Awaitable[int]]


def log_trim(
    bus: SqliteLogBus, *, window: float = DEFAULT_LOG_RETENTION, name: str = "bus_log"
) -> RetentionJob:
    """A job that calls :meth:`SqliteLogBus.trim` (*bus* must be started).

    The log keeps a message until every durable subscription of its stream has passed it
    (none holds it in flight) **and** it is older than *window*.
    """

    async def trim(now: float) -> int:
        return await bus.trim(window, now=now)

    return RetentionJob(name, window, trim)


def sqlite_inbox_purge(
    inbox: SqliteInbox, conn: sqlite3.Connection, *, window: float, name: str | None = None
) -> RetentionJob:
    """A job that calls :meth:`SqliteInbox.purge` on *conn* and commits.

    *conn* must not be used by anything else while the job runs (SQLite connections are not
    shared between tasks that hold a transaction open).
    """

    async def purge(now: float) -> int:
        with conn:  # commits the delete (rolls it back on error)
            return inbox.purge(conn, window, now=now)

    return RetentionJob(name or f"inbox_{inbox.table}", window, purge)


def postgres_inbox_purge(
    inbox: PostgresInbox,
    pool: asyncpg.Pool[asyncpg.Record],
    *,
    window: float,
    name: str | None = None,
) -> RetentionJob:
    """A job that calls :meth:`PostgresInbox.purge` on a connection of *pool* (autocommit)."""

    async def purge(now: float) -> int:
        async with pool.acquire() as conn:
            return await inbox.purge(conn, window, now=now)

    return RetentionJob(name or f"inbox_{inbox.table}", window, purge)


def check_retention_windows(
    *,
    log_retention: float,
    processed_retention: float,
    interval: float = DEFAULT_INTERVAL,
    margin: float = DEDUPE_MARGIN,
) -> None:
    """Refuse windows under which a replayed message could outlive its processed id.

    Args:
        log_retention: The bus log's retention window (seconds).
        processed_retention: How long the consumer's inbox keeps processed ids (seconds).
        interval: Seconds between retention rounds (a trim may come this late).
        margin: Extra slack (redelivery horizon, clock skew).

    Raises:
        ValueError: unless ``processed_retention >= log_retention + interval + margin``.
    """
    needed = log_retention + interval + margin
    if processed_retention < needed:
        msg = (
            f"processed ids are kept {processed_retention:.0f} s but the bus log keeps messages"
            f" up to {log_retention + interval:.0f} s: a replay could process a message twice;"
            f" keep processed ids at least {needed:.0f} s or shorten the log's retention"
        )
        raise ValueError(msg)


class Retention:
    """Runs retention jobs every *interval* seconds.

    Args:
        jobs: What to clean up (names must be unique).
        interval: Seconds between rounds; the first round runs at once.
        clock: The current time in Unix seconds, passed to every job of a round.
        sleep: Waits between rounds (inject a manual clock's ``sleep`` in tests).
        registry: Prometheus registry for the two counters (default registry if ``None``).
    """

    def __init__(
        self,
        jobs: Sequence[RetentionJob],
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        registry: CollectorRegistry | None = None,
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            msg = f"retention job names must be unique: {names}"
            raise ValueError(msg)
        if not interval > 0:
            msg = f"the retention interval must be positive, not {interval!r}"
            raise ValueError(msg)
        self.jobs, self.interval = tuple(jobs), interval
        self._clock, self._sleep = clock, sleep
        self._removed = counter(
            "messaging_retention_removed",
            "Records deleted by retention, by job.",
            ("job",),
            registry=registry,
        )
        self._failures = counter(
            "messaging_retention_failures",
            "Failed retention runs, by job.",
            ("job",),
            registry=registry,
        )

    async def run_once(self) -> dict[str, int]:
        """Run every job once; return how many records each removed (failed jobs omitted)."""
        now = self._clock()
        removed: dict[str, int] = {}
        for job in self.jobs:
            try:
                count = await job.remove(now)
            except Exception as error:  # retried next round; logged and counted, never silent
                self._failures.labels(job.name).inc()
                _log.warning("messaging.retention_failed", job=job.name, error=repr(error))
                continue
            self._removed.labels(job.name).inc(count)
            _log.info(
                "messaging.retention_ran", job=job.name, removed=count, window_seconds=job.window
            )
            removed[job.name] = count
        return removed

    async def run(self) -> None:
        """Run a round, sleep *interval*, repeat until cancelled."""
        while True:
            await self.run_once()
            await self._sleep(self.interval)
