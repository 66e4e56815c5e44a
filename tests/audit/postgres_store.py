"""An inventory event store written into a PostgreSQL schema with raw SQL (no inventory code)."""

from __future__ import annotations

import uuid

import msgspec

DDL = """
CREATE SCHEMA {s};
CREATE TABLE {s}.events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, stream_id text NOT NULL,
    sequence integer NOT NULL, event_id uuid NOT NULL, type text NOT NULL, data bytea NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(), correlation_id text, causation_id text
);
CREATE TABLE {s}.stock (
    sku text PRIMARY KEY, on_hand bigint NOT NULL, reserved bigint NOT NULL,
    version integer NOT NULL
);
"""


async def write_store(
    url: str,
    schema: str,
    events: list[tuple[str, int, str, dict[str, object]]],
    stock: list[tuple[str, int, int, int]],
    duplicate_id: bool = False,
) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(DDL.format(s=schema))
        same = uuid.uuid4()
        await conn.executemany(
            f"INSERT INTO {schema}.events (stream_id, sequence, event_id, type, data)"
            " VALUES ($1, $2, $3, $4, $5)",
            [
                (
                    sku,
                    seq,
                    same if duplicate_id else uuid.uuid4(),
                    kind,
                    msgspec.json.encode({"sku": sku, **data}),
                )
                for sku, seq, kind, data in events
            ],
        )
        await conn.executemany(f"INSERT INTO {schema}.stock VALUES ($1, $2, $3, $4)", stock)
    finally:
        await conn.close()
