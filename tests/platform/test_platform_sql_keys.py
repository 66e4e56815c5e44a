"""Primary-key reads on the loop (``stockflow.platform.sql_keys``) against the engine's reads.

Each case reads the same key both ways, from the same file: the lookup must answer what the
reader engine answers (the same values after the columns' result processors), see a commit at
once, and step aside (busy) rather than wait when SQLite cannot be read.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, insert, select, update

from stockflow.orders.adapters.orm import ORDERS
from stockflow.orders.adapters.repository import order_of
from stockflow.platform.sql import Database, database_for
from stockflow.platform.sql_keys import KeyLookupBusyError, SqliteKeys, read_by_key
from stockflow.profiles.adapters.orm import METADATA as PROFILES_METADATA
from stockflow.profiles.adapters.orm import PROFILES
from stockflow.profiles.adapters.repository import profile_of

PROFILE_ROWS = [
    {
        "user_id": "alice",
        "contents": {
            "name": "Alice \u00e9\u4e16\x00 \U0001f600",
            "email": "alice@example.com",
            "addresses": [
                {"label": "home", "line1": "1 Road", "city": "Paris", "postal_code": "75001"}
                | {"country": "FR", "line2": ""}
            ],
            "preferences": {"newsletter": True, "lang": "fr", "n": 3},
        },
        "version": 7,
        "updated_at": 1733300000.125,
    },
    {
        "user_id": "bob.o'brien@x",
        "contents": {"name": "", "email": "b@x"},
        "version": 1,
        "updated_at": 0.0,
    },
]
ORDER_ROWS = [
    {
        "id": "ord-1",
        "customer_id": "alice",
        "status": "REJECTED",
        "reason": "insufficient stock: SKU-1",
        "lines": [["SKU-1", 2], ["SKU-2", 1]],
        "reserved": ["SKU-2"],
        "created_at": 1.5,
        "updated_at": 2.25,
        "expires_at": 31.5,
        "version": 3,
    },
    {
        "id": "ord-2",
        "customer_id": "bob",
        "status": "PENDING",
        "reason": None,
        "lines": [["SKU-9", 1]],
        "reserved": [],
        "created_at": 1.0,
        "updated_at": 1.0,
        "expires_at": 31.0,
        "version": 1,
    },
]


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    database = database_for("memory://", name="keys-test")
    async with database.writer.begin() as connection:
        await connection.run_sync(PROFILES_METADATA.create_all, tables=[PROFILES])
        await connection.run_sync(ORDERS.metadata.create_all, tables=[ORDERS])
        await connection.execute(insert(PROFILES), PROFILE_ROWS)
        await connection.execute(insert(ORDERS), ORDER_ROWS)
    yield database
    await database.dispose()


async def engine_row(database: Database, table: Table, key: str) -> Any:
    (column,) = table.primary_key.columns
    async with database.reader.connect() as connection:
        return (await connection.execute(select(table).where(column == key))).first()


@pytest.mark.parametrize(
    ("table", "keys", "convert"),
    [
        (PROFILES, ["alice", "bob.o'brien@x", "nobody", "", "alice' OR '1'='1"], profile_of),
        (ORDERS, ["ord-1", "ord-2", "ord-3"], order_of),
    ],
)
async def test_a_key_lookup_answers_what_the_reader_engine_answers(
    database: Database, table: Table, keys: list[str], convert: Any
) -> None:
    assert database.keys is not None
    lookup = database.keys.lookup(table)
    for key in keys:
        fast, slow = lookup.get(key), await engine_row(database, table, key)
        if slow is None:
            assert fast is None, key
            continue
        assert fast._asdict() == slow._asdict(), key
        assert convert(fast) == convert(slow), key


async def test_a_key_lookup_sees_a_commit_at_once(database: Database) -> None:
    assert database.keys is not None
    lookup = database.keys.lookup(PROFILES)
    assert lookup.get("alice").version == 7
    async with database.writer.begin() as connection:
        await connection.execute(
            update(PROFILES).where(PROFILES.c.user_id == "alice").values(version=8)
        )
        assert lookup.get("alice").version == 7  # not committed yet: the last commit's
    assert lookup.get("alice").version == 8


async def test_a_busy_database_is_read_through_the_engine_instead(
    database: Database, tmp_path: Path
) -> None:
    # A rollback-journal file (WAL readers are never blocked): while a connection holds its
    # exclusive lock, no one else can read it, and the lookup does not wait.
    path = tmp_path / "journal.sqlite3"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as setup:
        setup.execute("CREATE TABLE profiles (user_id, contents, version, updated_at)")
        setup.execute(
            'INSERT INTO profiles VALUES (\'alice\', \'{"name": "A", "email": "a@x"}\', 7, 1.0)'
        )
    keys = SqliteKeys(path, database.reader.dialect)
    lookup = keys.lookup(PROFILES)
    assert lookup.get("alice").version == 7
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(KeyLookupBusyError):
            lookup.get("alice")
        fallbacks: list[str] = []

        async def through_the_engine() -> str:
            fallbacks.append("alice")
            return "from the engine"

        answer = await read_by_key(lookup, "alice", profile_of, through_the_engine)
        assert answer == "from the engine"
        assert fallbacks == ["alice"]
    finally:
        blocker.close()
    assert lookup.get("alice").contents == {"name": "A", "email": "a@x"}
    keys.close()


async def test_postgresql_databases_have_no_key_lookup() -> None:
    database = database_for("postgresql://nobody@127.0.0.1:1/none")
    try:
        assert database.keys is None
        answer = await read_by_key(None, "k", profile_of, _nothing)
        assert answer is None
    finally:
        await database.dispose()


async def _nothing() -> None:
    return None
