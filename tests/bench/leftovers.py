"""What a distributed bench run may leave on the shared servers: its databases and streams."""

from __future__ import annotations

import re

import asyncpg
import nats

_BENCH_STREAM = re.compile(r"^bench[0-9a-f]{10}_")


async def bench_databases(postgres_url: str) -> set[str]:
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'stockflow\\_bench\\_%'"
        )
    finally:
        await conn.close()
    return {row["datname"] for row in rows}


async def bench_streams(nats_url: str) -> set[str]:
    nc = await nats.connect(nats_url)
    try:
        infos = await nc.jetstream().streams_info()
    finally:
        await nc.close()
    return {i.config.name for i in infos if i.config.name and _BENCH_STREAM.match(i.config.name)}
