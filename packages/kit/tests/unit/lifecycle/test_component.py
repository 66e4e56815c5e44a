"""``component()``: plain functions, sync or async, become a ``Component``."""

from __future__ import annotations

import pytest

from stockflow_kit.lifecycle import Component, component


async def test_sync_and_async_functions_are_called_in_their_roles() -> None:
    calls: list[str] = []

    async def open_pool() -> None:
        calls.append("start")

    def close_pool() -> None:
        calls.append("stop")

    pool = component("pool", start=open_pool, stop=close_pool, readiness=lambda: "warming up")

    await pool.start()
    reason = await pool.readiness()
    await pool.stop()

    assert calls == ["start", "stop"]
    assert reason == "warming up"
    assert pool.name == "pool"
    assert isinstance(pool, Component)


async def test_missing_functions_do_nothing_and_mean_ready() -> None:
    nothing = component("nothing")

    await nothing.start()
    await nothing.stop()

    assert await nothing.readiness() is None


async def test_an_async_readiness_is_awaited() -> None:
    async def check() -> str | None:
        return None

    assert await component("db", readiness=check).readiness() is None


async def test_a_readiness_that_returns_something_else_than_a_reason_is_an_error() -> None:
    odd = component("odd", readiness=lambda: 503)  # type: ignore[arg-type,return-value]

    with pytest.raises(TypeError, match="odd"):
        await odd.readiness()
