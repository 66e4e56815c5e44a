"""The SQL of ``PostgresEventStore``, for one schema (namespace) given at construction.

Compact columns: ``uuid`` event ids, ``bytea`` msgspec-JSON payloads, ``timestamptz`` times.
``position`` is an identity column without a sequence cache (the default, CACHE 1): with a
per-session cache, positions would not follow commit order and ``read_all`` could skip events.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["PostgresSql", "valid_schema"]

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

EVENT_COLUMNS: Final = (
    "stream_id",
    "sequence",
    "event_id",
    "type",
    "data",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "traceparent",
)
STREAM_SEQUENCE_KEY: Final = "events_stream_sequence_key"
EVENT_ID_KEY: Final = "events_event_id_key"
PROCESSED_KEY: Final = "processed_pkey"


def valid_schema(schema: str) -> str:
    """``schema`` if it is a plain lower-case identifier (it is interpolated into SQL)."""
    if not _IDENTIFIER.fullmatch(schema):
        raise ValueError(f"not a plain lower-case SQL identifier: {schema!r}")
    return schema


class PostgresSql:
    """Every statement, with the schema name filled in once."""

    def __init__(self, schema: str) -> None:
        s = valid_schema(schema)
        self.schema = s
        self.ddl = f"""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id text NOT NULL,
    sequence integer NOT NULL CHECK (sequence >= 1),
    event_id uuid NOT NULL,
    type text NOT NULL,
    data bytea NOT NULL,
    occurred_at timestamptz NOT NULL,
    correlation_id text,
    causation_id text,
    traceparent text,
    CONSTRAINT {STREAM_SEQUENCE_KEY} UNIQUE (stream_id, sequence),
    CONSTRAINT {EVENT_ID_KEY} UNIQUE (event_id)
);
CREATE TABLE IF NOT EXISTS {s}.processed (
    message_id text NOT NULL,
    processed_at timestamptz NOT NULL,
    CONSTRAINT {PROCESSED_KEY} PRIMARY KEY (message_id)
);
CREATE INDEX IF NOT EXISTS processed_by_time ON {s}.processed (processed_at);
CREATE TABLE IF NOT EXISTS {s}.stock (
    sku text PRIMARY KEY,
    on_hand bigint NOT NULL,
    reserved bigint NOT NULL,
    version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.snapshots (
    stream_id text PRIMARY KEY,
    version integer NOT NULL,
    state bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.fences (key text PRIMARY KEY, version bigint NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.checkpoints (name text PRIMARY KEY, position bigint NOT NULL);
INSERT INTO {s}.checkpoints (name, position) VALUES ('projection', 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS {s}.idempotency (
    scope text NOT NULL,
    key text NOT NULL,
    request_hash text NOT NULL,
    status integer NOT NULL,
    body bytea NOT NULL,
    media_type text NOT NULL,
    created_at double precision NOT NULL,
    CONSTRAINT idempotency_pkey PRIMARY KEY (scope, key)
);
-- The release before scopes had idempotency (key PRIMARY KEY, request_hash, status, body).
-- Its rows are kept in the unscoped scope '' (the deprecated unscoped calls use it), with the
-- migration time as created_at, so pruning drops them one retention period later.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM information_schema.columns
        WHERE table_schema = '{s}' AND table_name = 'idempotency' AND column_name = 'scope'
    ) THEN
        ALTER TABLE {s}.idempotency
            ADD COLUMN scope text NOT NULL DEFAULT '',
            ADD COLUMN media_type text NOT NULL DEFAULT 'application/json',
            ADD COLUMN created_at double precision NOT NULL DEFAULT extract(epoch FROM now());
        UPDATE {s}.idempotency SET media_type = 'application/problem+json' WHERE status >= 400;
        ALTER TABLE {s}.idempotency
            ALTER COLUMN scope DROP DEFAULT,
            ALTER COLUMN media_type DROP DEFAULT,
            ALTER COLUMN created_at DROP DEFAULT,
            DROP CONSTRAINT idempotency_pkey,
            ADD CONSTRAINT idempotency_pkey PRIMARY KEY (scope, key);
    END IF;
END
$$;
CREATE INDEX IF NOT EXISTS idempotency_by_time ON {s}.idempotency (created_at);
-- Dynamic assignment (ADR 0010): one lease per partition (-1: the relay's), the members, and
-- per committed batch and partition which member wrote it at which epoch (the audit trail).
CREATE TABLE IF NOT EXISTS {s}.leases (
    partition integer PRIMARY KEY,
    owner text,
    epoch bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.members (
    member_id text PRIMARY KEY,
    url text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.lease_commits (
    partition integer NOT NULL,
    epoch bigint NOT NULL,
    member text NOT NULL,
    first_position bigint NOT NULL,
    last_position bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS lease_commits_by_partition ON {s}.lease_commits (partition, last_position);
"""
        self.relations: tuple[str, ...] = tuple(
            re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (?:\w+\.)?(\w+)", self.ddl)
        )
        """Every table and index ``ddl`` creates: when all exist, it need not run."""
        # The events' trace context (the release before had none): added to an older table
        # once, NULL for the events written before.
        self.has_traceparent = (
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = $1"
            " AND table_name = 'events' AND column_name = 'traceparent'"
        )
        self.add_traceparent = f"ALTER TABLE {s}.events ADD COLUMN IF NOT EXISTS traceparent text"
        self.count_relations = (
            "SELECT count(*) FROM pg_catalog.pg_class AS c"
            " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
            f" WHERE n.nspname = '{s}' AND c.relname = ANY($1::text[])"
        )
        # Taken before the first insert of a batch and held to its commit: transactions that
        # append commit in position order, so a reader paging read_all never skips a late one.
        # Reads (ACCESS SHARE) are not blocked.
        self.lock_events = f"LOCK TABLE {s}.events IN EXCLUSIVE MODE"
        self.count_anchors = (
            f"SELECT count(*) FROM unnest($1::text[], $2::integer[]) AS anchor(stream_id, sequence)"
            f" JOIN {s}.events USING (stream_id, sequence)"
        )
        self.set_checkpoint = (
            f"UPDATE {s}.checkpoints SET position = (SELECT max(position) FROM {s}.events)"
            " WHERE name = 'projection' RETURNING position"
        )
        self.get_checkpoint = f"SELECT position FROM {s}.checkpoints WHERE name = 'projection'"
        self.upsert_stock = (
            f"INSERT INTO {s}.stock (sku, on_hand, reserved, version)"
            " SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::integer[])"
            " ON CONFLICT (sku) DO UPDATE SET on_hand = excluded.on_hand,"
            " reserved = excluded.reserved, version = excluded.version"
        )
        columns = ", ".join(("position", *EVENT_COLUMNS))
        self.read_stream = (
            f"SELECT {columns} FROM {s}.events WHERE stream_id = $1 AND sequence > $2"
            " ORDER BY sequence LIMIT $3"
        )
        self.read_all = (
            f"SELECT {columns} FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2"
        )
        self.stream_version = (
            f"SELECT coalesce(max(sequence), 0) FROM {s}.events WHERE stream_id = $1"
        )
        # A loose index scan along (stream_id, sequence): two probes per stream, no log scan.
        self.stream_versions = (
            f"WITH RECURSIVE streams (id) AS (SELECT min(stream_id) FROM {s}.events"
            f" UNION ALL SELECT (SELECT min(stream_id) FROM {s}.events WHERE stream_id > streams.id)"
            " FROM streams WHERE streams.id IS NOT NULL)"
            f" SELECT id, (SELECT max(sequence) FROM {s}.events WHERE stream_id = streams.id)"
            " FROM streams WHERE id IS NOT NULL"
        )
        self.processed = f"SELECT message_id FROM {s}.processed WHERE message_id = ANY($1::text[])"
        self.prune_processed = f"DELETE FROM {s}.processed WHERE processed_at < $1"
        self.create_fence = (
            f"INSERT INTO {s}.fences (key, version) VALUES ($1, 1)"
            " ON CONFLICT (key) DO NOTHING RETURNING version"
        )
        self.move_fence = (
            f"UPDATE {s}.fences SET version = version + 1 WHERE key = $1 AND version = $2"
            " RETURNING version"
        )
        self.fence_version = f"SELECT coalesce((SELECT version FROM {s}.fences WHERE key = $1), 0)"
        self.upsert_snapshots = (
            f"INSERT INTO {s}.snapshots (stream_id, version, state)"
            " SELECT * FROM unnest($1::text[], $2::integer[], $3::bytea[])"
            " ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,"
            " state = excluded.state"
        )
        self.load_snapshots = (
            f"SELECT stream_id, version, state FROM {s}.snapshots ORDER BY stream_id"
        )
        self.get_stock = f"SELECT sku, on_hand, reserved, version FROM {s}.stock WHERE sku = $1"
        self.all_stock = f"SELECT sku, on_hand, reserved, version FROM {s}.stock ORDER BY sku"
        self.named_checkpoint = (
            f"SELECT coalesce((SELECT position FROM {s}.checkpoints WHERE name = $1), 0)"
        )
        self.save_checkpoint = (
            f"INSERT INTO {s}.checkpoints (name, position) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE"
            f" SET position = greatest({s}.checkpoints.position, excluded.position)"
        )
        # Taken by replace_stock: appenders (EXCLUSIVE) wait until the rebuild is in.
        self.share_events = f"LOCK TABLE {s}.events IN SHARE MODE"
        self.last_position = f"SELECT coalesce(max(position), 0) FROM {s}.events"
        self.delete_stock = f"DELETE FROM {s}.stock"
        self.replace_checkpoint = (
            f"UPDATE {s}.checkpoints SET position = $1 WHERE name = 'projection'"
        )
        # Leases: expiry by the database's clock; the epoch moves only under the row's lock.
        self.ensure_leases = (
            f"INSERT INTO {s}.leases (partition) SELECT unnest($1::integer[])"
            " ON CONFLICT DO NOTHING"
        )
        self.heartbeat = (
            f"INSERT INTO {s}.members (member_id, url, expires_at)"
            " VALUES ($1, $2, now() + make_interval(secs => $3))"
            " ON CONFLICT (member_id) DO UPDATE SET url = excluded.url,"
            " expires_at = excluded.expires_at"
        )
        self.live_members = (
            f"SELECT member_id, url FROM {s}.members WHERE expires_at > now() ORDER BY member_id"
        )
        self.leave = f"DELETE FROM {s}.members WHERE member_id = $1"
        self.all_leases = (
            f"SELECT partition, owner, epoch, expires_at > now() FROM {s}.leases ORDER BY partition"
        )
        self.acquire = (
            f"UPDATE {s}.leases SET owner = $2, epoch = epoch + 1,"
            " expires_at = now() + make_interval(secs => $3)"
            " WHERE partition = $1 AND (owner IS NULL OR expires_at <= now()) RETURNING epoch"
        )
        self.renew = (
            f"UPDATE {s}.leases SET expires_at = now() + make_interval(secs => $2)"
            " WHERE owner = $1 RETURNING partition, epoch"
        )
        self.release = (
            f"UPDATE {s}.leases SET owner = NULL, expires_at = now()"
            " WHERE partition = $1 AND owner = $2 AND epoch = $3"
        )
        # FOR SHARE: concurrent commits of one owner do not block each other; a takeover's
        # UPDATE waits for them, and a commit after it finds the new epoch.
        self.check_leases = (
            f"SELECT l.partition FROM {s}.leases AS l"
            " JOIN unnest($1::integer[], $2::bigint[]) AS h(partition, epoch)"
            " ON l.partition = h.partition AND l.epoch = h.epoch"
            " WHERE l.owner = $3 FOR SHARE OF l"
        )
        self.record_lease_commits = (
            f"INSERT INTO {s}.lease_commits (partition, epoch, member, first_position,"
            " last_position) SELECT p, e, $3, $4, $5 FROM unnest($1::integer[], $2::bigint[])"
            " AS h(p, e)"
        )
        record_columns = "scope, key, request_hash, status, body, media_type, created_at"
        self.insert_records = (
            f"INSERT INTO {s}.idempotency ({record_columns})"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[],"
            " $5::bytea[], $6::text[], $7::double precision[])"
            " ON CONFLICT (scope, key) DO NOTHING"
        )
        self.get_record = (
            f"SELECT {record_columns} FROM {s}.idempotency WHERE scope = $1 AND key = $2"
        )
        self.prune_records = f"DELETE FROM {s}.idempotency WHERE created_at < $1"
