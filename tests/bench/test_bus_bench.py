"""``stockflow bench bus`` on the shared JetStream server leaves no stream behind."""

from __future__ import annotations

import uuid

import nats
import pytest

from stockflow.bench.bus import run_bus_bench

pytestmark = pytest.mark.integration


async def stream_names(nats_url: str, prefix: str) -> list[str]:
    nc = await nats.connect(nats_url)
    try:
        infos = await nc.jetstream().streams_info()
    finally:
        await nc.close()
    return [i.config.name for i in infos if i.config.name and i.config.name.startswith(prefix)]


class ProgressFailedError(Exception):
    """Raised by the test's progress callback to fail a run in the middle."""


async def test_a_run_uses_its_own_prefix_and_deletes_its_streams(nats_url: str) -> None:
    prefix = f"benchbus-t{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    results = await run_bus_bench(
        urls={"distributed": f"{nats_url}?prefix=ignored"},
        batch_sizes=(100,),
        messages=200,
        progress=lines.append,
        stream_prefix=prefix,
    )

    assert [(r.backend, r.messages) for r in results] == [("distributed", 200)]
    assert any(f"deleted 2 bench stream(s) with prefix {prefix!r}" in line for line in lines)
    assert await stream_names(nats_url, prefix) == []
    assert await stream_names(nats_url, "ignored_") == []


async def test_a_failed_run_still_deletes_its_streams(nats_url: str) -> None:
    prefix = f"benchbus-t{uuid.uuid4().hex[:8]}"

    def fail_after_the_first_measurement(line: str) -> None:
        if "consume+ack" in line:  # the streams exist by now
            raise ProgressFailedError(line)

    with pytest.raises(ProgressFailedError):
        await run_bus_bench(
            urls={"distributed": nats_url},
            batch_sizes=(100,),
            messages=200,
            progress=fail_after_the_first_measurement,
            stream_prefix=prefix,
        )

    assert await stream_names(nats_url, prefix) == []
