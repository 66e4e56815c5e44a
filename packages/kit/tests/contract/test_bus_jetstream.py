"""The bus contract, run against NATS JetStream (the shared server of ``nats_url``).

Each test gets its own subject/stream prefix, so runs never collide on the shared server,
and its streams are deleted afterwards. Restarting that server is not allowed, so the
restart case is proved on a private server in ``test_jetstream_server_restart.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import nats
import pytest

from stockflow_kit.messaging.testing import BusContract

pytestmark = pytest.mark.integration


async def delete_prefixed_streams(nats_url: str, prefix: str) -> list[str]:
    """Delete the streams a bus with *prefix* created; return their names."""
    nc = await nats.connect(nats_url)
    try:
        query = json.dumps({"subject": f"{prefix}.>"}).encode()
        reply = await nc.request("$JS.API.STREAM.NAMES", query, timeout=5)
        names: list[str] = json.loads(reply.data)["streams"] or []
        js = nc.jetstream()
        for name in names:
            await js.delete_stream(name)
        return names
    finally:
        await nc.close()


class TestJetStreamBus(BusContract):
    supports_subprocess = True
    supports_server_restart = False  # the shared server must never be restarted
    no_server_restart_reason = (
        "the shared NATS server is never restarted; this case runs against a private"
        " nats-server in tests/integration/messaging/test_jetstream_server_restart.py"
    )

    @pytest.fixture
    async def bus_url(self, nats_url: str) -> AsyncIterator[str]:
        prefix = f"ct-{uuid.uuid4().hex[:10]}"
        yield f"{nats_url}?prefix={prefix}&timeout=2"
        await delete_prefixed_streams(nats_url, prefix)
