"""Fixtures for the profiles integration tests: a fresh PostgreSQL database and a private
NATS JetStream stream prefix per test, both removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from tests.servers import admin_execute, delete_streams


@pytest.fixture
async def profiles_database(postgres_url: str) -> AsyncIterator[str]:
    """The URL of an empty PostgreSQL database for one test."""
    name = f"profiles_{uuid.uuid4().hex[:10]}"
    await admin_execute(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin_execute(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def jetstream_url(nats_url: str) -> AsyncIterator[str]:
    """The NATS JetStream bus URL with a stream prefix of its own for one test."""
    run = f"t{uuid.uuid4().hex[:10]}"
    try:
        yield f"{nats_url}?prefix={run}"
    finally:
        await delete_streams(nats_url, prefix=f"{run}_")
