"""The SQL of ``SqliteEventStore``: its schema (created idempotently) and its statements.

Compact columns: event ids are 16-byte BLOBs, times are INTEGER microseconds since the Unix
epoch (UTC), payloads are the msgspec-JSON bytes as BLOBs. ``position`` is the rowid: SQLite has
one writer at a time, so positions are committed in order.
"""

from __future__ import annotations

import sqlite3
from typing import Final

SCHEMA: Final = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    sequence INTEGER NOT NULL CHECK (sequence >= 1),
    event_id BLOB NOT NULL UNIQUE,
    type TEXT NOT NULL,
    data BLOB NOT NULL,
    occurred_at INTEGER NOT NULL,
    correlation_id TEXT,
    causation_id TEXT,
    traceparent TEXT,
    UNIQUE (stream_id, sequence)
);
CREATE TABLE IF NOT EXISTS processed (
    message_id TEXT PRIMARY KEY,
    processed_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS processed_by_time ON processed (processed_at);
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT PRIMARY KEY,
    on_hand INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fences (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO checkpoints (name, position) VALUES ('projection', 0);
COMMIT;
"""

# The idempotency table, created or migrated in one transaction after SCHEMA (see
# ``create_schema``): the release before scopes had ``idempotency (key PRIMARY KEY,
# request_hash, status, body)``, whose primary key SQLite cannot change in place.
_IDEMPOTENCY_TABLE: Final = """
CREATE TABLE {name} (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    media_type TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID
"""
IDEMPOTENCY_COLUMNS: Final = "SELECT name FROM pragma_table_info('idempotency')"
CREATE_IDEMPOTENCY: Final = _IDEMPOTENCY_TABLE.format(name="idempotency")
# Old rows are kept, in the unscoped scope '' that the deprecated unscoped calls use, and get
# the migration time as created_at (they had none), so pruning drops them one retention
# period later.
MIGRATE_IDEMPOTENCY: Final = (
    _IDEMPOTENCY_TABLE.format(name="idempotency_scoped"),
    "INSERT INTO idempotency_scoped"
    " (scope, key, request_hash, status, body, media_type, created_at)"
    " SELECT '', key, request_hash, status, body, CASE WHEN status >= 400"
    " THEN 'application/problem+json' ELSE 'application/json' END,"
    " (julianday('now') - 2440587.5) * 86400.0 FROM idempotency",
    "DROP TABLE idempotency",
    "ALTER TABLE idempotency_scoped RENAME TO idempotency",
)
INDEX_IDEMPOTENCY: Final = (
    "CREATE INDEX IF NOT EXISTS idempotency_by_time ON idempotency (created_at)"
)

_EVENT_COLUMNS: Final = (
    "position, stream_id, sequence, event_id, type, data, occurred_at, correlation_id,"
    " causation_id, traceparent"
)

INSERT_EVENT: Final = (
    "INSERT INTO events (stream_id, sequence, event_id, type, data, occurred_at,"
    " correlation_id, causation_id, traceparent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The trace context of each event (the release before had none): added in place, NULL for the
# events written before.
EVENT_COLUMN_NAMES: Final = "SELECT name FROM pragma_table_info('events')"
ADD_TRACEPARENT: Final = "ALTER TABLE events ADD COLUMN traceparent TEXT"
# The anchors are a JSON array of [stream_id, sequence] pairs that must all exist.
COUNT_ANCHORS: Final = (
    "SELECT count(*) FROM json_each(?) AS anchor JOIN events"
    " ON events.stream_id = json_extract(anchor.value, '$[0]')"
    " AND events.sequence = json_extract(anchor.value, '$[1]')"
)
READ_STREAM: Final = (
    f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream_id = ? AND sequence > ?"
    " ORDER BY sequence LIMIT ?"
)
READ_ALL: Final = (
    f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
)
STREAM_VERSION: Final = "SELECT coalesce(max(sequence), 0) FROM events WHERE stream_id = ?"
# Each stream's last sequence by skipping from one stream id to the next along the
# (stream_id, sequence) index: two probes per stream, not a scan of the log.
STREAM_VERSIONS: Final = (
    "WITH RECURSIVE streams (id) AS (SELECT min(stream_id) FROM events"
    " UNION ALL SELECT (SELECT min(stream_id) FROM events WHERE stream_id > streams.id)"
    " FROM streams WHERE streams.id IS NOT NULL)"
    " SELECT id, (SELECT max(sequence) FROM events WHERE stream_id = streams.id)"
    " FROM streams WHERE id IS NOT NULL"
)

INSERT_PROCESSED: Final = "INSERT INTO processed (message_id, processed_at) VALUES (?, ?)"
PROCESSED: Final = (
    "SELECT message_id FROM processed WHERE message_id IN (SELECT value FROM json_each(?))"
)
PRUNE_PROCESSED: Final = "DELETE FROM processed WHERE processed_at < ?"

UPSERT_STOCK: Final = (
    "INSERT INTO stock (sku, on_hand, reserved, version) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (sku) DO UPDATE SET on_hand = excluded.on_hand,"
    " reserved = excluded.reserved, version = excluded.version"
)
GET_STOCK: Final = "SELECT sku, on_hand, reserved, version FROM stock WHERE sku = ?"
ALL_STOCK: Final = "SELECT sku, on_hand, reserved, version FROM stock ORDER BY sku"

GET_CHECKPOINT: Final = "SELECT position FROM checkpoints WHERE name = 'projection'"
SET_CHECKPOINT: Final = "UPDATE checkpoints SET position = ? WHERE name = 'projection'"

CREATE_FENCE: Final = "INSERT INTO fences (key, version) VALUES (?, 1) ON CONFLICT (key) DO NOTHING"
MOVE_FENCE: Final = "UPDATE fences SET version = version + 1 WHERE key = ? AND version = ?"
FENCE_VERSION: Final = "SELECT coalesce((SELECT version FROM fences WHERE key = ?), 0)"

UPSERT_SNAPSHOT: Final = (
    "INSERT INTO snapshots (stream_id, version, state) VALUES (?, ?, ?)"
    " ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state"
)
LOAD_SNAPSHOTS: Final = "SELECT stream_id, version, state FROM snapshots ORDER BY stream_id"

NAMED_CHECKPOINT: Final = "SELECT coalesce((SELECT position FROM checkpoints WHERE name = ?), 0)"
SAVE_CHECKPOINT: Final = (
    "INSERT INTO checkpoints (name, position) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET position = max(position, excluded.position)"
)

DELETE_STOCK: Final = "DELETE FROM stock"
INSERT_STOCK: Final = "INSERT INTO stock (sku, on_hand, reserved, version) VALUES (?, ?, ?, ?)"
LAST_POSITION: Final = "SELECT coalesce(max(position), 0) FROM events"

INSERT_RECORD: Final = (
    "INSERT INTO idempotency (scope, key, request_hash, status, body, media_type, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO NOTHING"
)
GET_RECORD: Final = (
    "SELECT scope, key, request_hash, status, body, media_type, created_at FROM idempotency"
    " WHERE scope = ? AND key = ?"
)
PRUNE_RECORDS: Final = "DELETE FROM idempotency WHERE created_at < ?"


def create_schema(db: sqlite3.Connection) -> None:
    """Create the schema, or bring the one of an earlier release up to date (idempotent)."""
    db.executescript(SCHEMA)
    # The events' trace context, added to an older events table; the idempotency table:
    # created, or migrated from the unscoped one of the release before.
    db.execute("BEGIN IMMEDIATE")  # another process opening the same file waits here
    try:
        if "traceparent" not in {name for (name,) in db.execute(EVENT_COLUMN_NAMES)}:
            db.execute(ADD_TRACEPARENT)
        columns = {name for (name,) in db.execute(IDEMPOTENCY_COLUMNS)}
        if not columns:
            db.execute(CREATE_IDEMPOTENCY)
        elif "scope" not in columns:
            for statement in MIGRATE_IDEMPOTENCY:
                db.execute(statement)
        db.execute(INDEX_IDEMPOTENCY)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
