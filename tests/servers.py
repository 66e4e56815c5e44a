"""Helpers for tests on the shared PostgreSQL and NATS servers: leave them as found."""

from __future__ import annotations


async def delete_streams(nats_url: str, *, prefix: str) -> None:
    """Delete the JetStream streams whose names start with *prefix* (one test's streams)."""
    import nats

    client = await nats.connect(nats_url)
    try:
        jetstream = client.jetstream()
        for info in await jetstream.streams_info():
            if info.config.name and info.config.name.startswith(prefix):
                await jetstream.delete_stream(info.config.name)
    finally:
        await client.close()


async def admin_execute(postgres_url: str, sql: str) -> None:
    """Run *sql* on the server's ``postgres`` database (CREATE / DROP DATABASE)."""
    import asyncpg

    connection = await asyncpg.connect(postgres_url.rsplit("/", 1)[0] + "/postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()
