"""A state-stored service's database: engines from a URL, SQLite's transaction rules, alembic
at start-up, and the unit of work in which state, outbox, inbox and answers commit together.

``memory://`` (tests), ``sqlite:///<path>`` (embedded; aiosqlite) and ``postgresql://…``
(distributed; asyncpg). SQLite gets WAL, ``synchronous=FULL`` (a commit is on disk before it
is acknowledged) and ``BEGIN IMMEDIATE`` for every write transaction, so a transaction that
reads a row and then changes it holds the write lock from its first read: no lost update,
no "database is locked" half-way. Reads use a second engine with deferred transactions, so
they never wait for the writer (WAL readers see the last commit).

:func:`migrate` brings the schema to the newest revision of a service's alembic directory; on
PostgreSQL it first takes an advisory lock, so replicas starting together migrate once. The
directory's ``env.py`` is one call: ``alembic_env(METADATA)``.

:class:`SqlUnitOfWork` is one write transaction: the service's repository, the kit's inbox
(processed message ids), Idempotency-Key store and outbox all write on its connection, so a
change, its events, the ids that caused it and the HTTP answer that reports it commit together
or not at all. After a commit that published anything, ``committed()`` wakes the relay.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, event, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncTransaction,
    create_async_engine,
)

from stockflow.platform.sql_keys import SqliteKeys
from stockflow_kit.http import IdempotencyRecord
from stockflow_kit.http.sqlalchemy import SqlAlchemyIdempotencyStore
from stockflow_kit.lifecycle import Component, component
from stockflow_kit.messaging import Delivery, Envelope
from stockflow_kit.messaging.sqlalchemy import SqlAlchemyInbox, SqlAlchemyOutbox

__all__ = [
    "Database",
    "SqlUnitOfWork",
    "alembic_env",
    "database_component",
    "database_for",
    "migrate",
]

_MIGRATION_LOCK: Final = 0x0_5F0C_F10E  # pg_advisory_xact_lock key: "stockflow migrations"


@dataclass(frozen=True)
class Database:
    """The engines of one service's database: ``writer`` for transactions that change state,
    ``reader`` for queries (the same engine on PostgreSQL)."""

    writer: AsyncEngine
    reader: AsyncEngine
    dialect: str
    temporary: Path | None = None
    keys: SqliteKeys | None = None
    """Primary-key reads on the event loop (SQLite only; :mod:`stockflow.platform.sql_keys`)."""

    @property
    def serialized(self) -> bool:
        """Whether write transactions run one at a time (SQLite's single writer)."""
        return self.dialect == "sqlite"

    async def dispose(self) -> None:
        if self.keys is not None:
            self.keys.close()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)


def database_for(url: str, *, name: str = "service") -> Database:
    """Engines for ``memory://``, ``sqlite:///<path>`` or ``postgresql://…`` (nothing connects yet).

    Raises:
        ValueError: another scheme.
    """
    scheme = urlsplit(url).scheme
    if scheme in {"memory", "sqlite"}:
        # memory://: a throwaway file (SQLite's :memory: is one connection, not a database
        # that a writer and readers can share); removed by dispose().
        temporary = Path(tempfile.mkdtemp(prefix=f"{name}-")) if scheme == "memory" else None
        path = (
            temporary / f"{name}.sqlite3"
            if temporary is not None
            else Path(url.removeprefix("sqlite:///"))
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=1, max_overflow=0)
        reader = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=4)
        _sqlite_rules(writer, immediate=True)
        _sqlite_rules(reader, immediate=False)
        keys = SqliteKeys(path, reader.dialect)
        return Database(writer, reader, "sqlite", temporary, keys)
    if scheme in {"postgresql", "postgres"}:
        rest = url.split("://", 1)[1]
        engine = create_async_engine(
            f"postgresql+asyncpg://{rest}", pool_size=10, max_overflow=10, pool_pre_ping=True
        )
        return Database(engine, engine, "postgresql")
    raise ValueError(
        f"unsupported database URL {url!r}: use memory://, sqlite:///… or postgresql://…"
    )


def _sqlite_rules(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: object) -> None:
        # SQLAlchemy, not the driver, decides when transactions begin (the pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "busy_timeout = 10000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _alembic(connection: Connection, migrations: Path, revision: str, down: bool) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(config, revision)


async def migrate(
    database: Database, migrations: Path, revision: str = "head", *, down: bool = False
) -> None:
    """Upgrade the schema to *revision* of the alembic directory *migrations* (the newest by
    default), in one transaction; with *down*, downgrade to it instead (``"base"``: no
    tables)."""
    async with database.writer.begin() as connection:
        if database.dialect == "postgresql":
            await connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
        await connection.run_sync(_alembic, migrations, revision, down)


def alembic_env(metadata: MetaData) -> None:
    """The body of a migrations directory's ``env.py``: run alembic on the connection
    :func:`migrate` passes (``config.attributes["connection"]``)."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "run the migrations through stockflow.platform.sql.migrate, which passes an open"
            " connection"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


class SqlUnitOfWork:
    """One write transaction; see the module docstring. Subclass it to add the service's
    repositories (built on :attr:`connection` in :meth:`opened`). A service that publishes
    nothing (notifications) passes no *outbox*; :meth:`publish` then raises."""

    def __init__(
        self,
        database: Database,
        *,
        outbox: SqlAlchemyOutbox | None = None,
        inbox: SqlAlchemyInbox | None = None,
        answers: SqlAlchemyIdempotencyStore | None = None,
        committed: Callable[[], None] = lambda: None,
    ) -> None:
        self.database, self.outbox, self.inbox, self.answers = database, outbox, inbox, answers
        self.committed = committed
        self._connection: AsyncConnection | None = None
        self._transaction: AsyncTransaction | None = None
        self._outgoing: list[tuple[str, Sequence[Envelope], Mapping[str, str] | None]] = []

    def opened(self, connection: AsyncConnection) -> None:
        """Called with the transaction's connection when it begins: build repositories here."""

    async def __aenter__(self) -> Self:
        self._connection = await self.database.writer.connect()
        try:
            self._transaction = await self._connection.begin()
        except BaseException:
            await self._connection.close()
            raise
        self._outgoing = []
        self.opened(self._connection)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, transaction = self._connection, self._transaction
        self._connection = self._transaction = None
        try:
            if transaction is not None and transaction.is_active:
                await transaction.rollback()
        finally:
            if connection is not None:
                await connection.close()

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("use the unit of work inside 'async with'")
        return self._connection

    async def new_messages(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Record the deliveries' ids (inbox) and return those never processed before."""
        if self.inbox is None:
            raise RuntimeError("this unit of work has no inbox")
        return await self.inbox.filter_new(self.connection, deliveries)

    async def record_answer(self, record: IdempotencyRecord) -> bool:
        """Store an Idempotency-Key answer; ``False`` when its key already has one."""
        return (await self.record_answers([record]))[0]

    async def record_answers(self, records: Sequence[IdempotencyRecord]) -> list[bool]:
        """Store Idempotency-Key answers in one statement; for each, whether it was new."""
        if self.answers is None:
            raise RuntimeError("this unit of work has no Idempotency-Key store")
        return await self.answers.add_many(self.connection, records)

    def publish(
        self,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        trace: Mapping[str, str] | None = None,
    ) -> None:
        """Store *envelopes* for *topic* in the outbox at commit (one statement for all).

        *trace* is the trace context to publish them under (``propagate.inject`` of the
        request that caused them) when the commit runs in another task, as a group commit
        does; by default the context current at commit."""
        if self.outbox is None:
            raise RuntimeError("this unit of work has no outbox")
        if envelopes:
            self._outgoing.append((topic, envelopes, trace))

    async def commit(self) -> None:
        connection, transaction = self.connection, self._transaction
        assert transaction is not None
        if self._outgoing:
            assert self.outbox is not None  # publish() refuses without one
            await self.outbox.add_groups(connection, self._outgoing)
        await transaction.commit()
        if self._outgoing:
            self._outgoing = []
            self.committed()


def database_component(
    database: Database,
    migrations: Path,
    *,
    opened: Callable[[], Any] | None = None,
    closing: Callable[[], Any] | None = None,
) -> Component:
    """A service's database as a lifecycle component: started = migrated to the newest
    revision (then *opened*, e.g. an idempotency store's start), stopped = *closing* then
    disposed; ready while ``SELECT 1`` answers on the reader engine."""

    async def start() -> None:
        await migrate(database, migrations)
        if opened is not None:
            await opened()

    async def stop() -> None:
        if closing is not None:
            await closing()
        await database.dispose()

    async def readiness() -> str | None:
        try:
            async with database.reader.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as error:  # any failure of the probe means: not ready
            return f"not reachable ({type(error).__name__})"
        return None

    return component("database", start=start, stop=stop, readiness=readiness)
