"""The rate limiter over ``limits``: limits per client, Retry-After, and failing open."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from stockflow.edge.adapters.rate_limits import LimitsRateLimiter, storage_for
from stockflow.edge.domain.identity import RateLimitedError
from stockflow_kit.lifecycle import free_port


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window"])
async def test_a_client_is_refused_past_its_limit_with_the_seconds_to_wait(strategy: str) -> None:
    limiter = LimitsRateLimiter(
        "2/minute",
        storage=storage_for("memory://"),
        strategy=strategy,  # type: ignore[arg-type]
    )
    try:
        await limiter.hit("user:a")
        await limiter.hit("user:a")
        with pytest.raises(RateLimitedError) as refused:
            await limiter.hit("user:a")
        assert 1 <= refused.value.retry_after <= 60
        await limiter.hit("user:b")  # its own quota
    finally:
        await limiter.close()


async def test_every_limit_of_a_list_applies() -> None:
    limiter = LimitsRateLimiter("100/second;2/hour", storage=storage_for("memory://"))
    try:
        await limiter.hit("c")
        await limiter.hit("c")
        with pytest.raises(RateLimitedError, match="2 per 1 hour"):
            await limiter.hit("c")
    finally:
        await limiter.close()


def test_settings_that_do_not_parse_are_refused() -> None:
    with pytest.raises(ValueError, match="limits notation"):
        LimitsRateLimiter("lots", storage=storage_for("memory://"))
    with pytest.raises(ValueError, match="memory:// or redis://"):
        storage_for("memcached://x")


async def test_an_unreachable_redis_fails_open_counted_and_logged_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = [0.0]
    registry = CollectorRegistry()
    limiter = LimitsRateLimiter(
        "1/minute",
        storage=storage_for(f"redis://127.0.0.1:{free_port()}"),
        timeout=0.5,
        cooldown=5.0,
        registry=registry,
        clock=lambda: now[0],
    )
    try:
        for _ in range(5):  # over the limit, yet let through: the storage cannot say
            await limiter.hit("user:a")
        now[0] = 6.0  # past the cooldown: asked again, fails again
        await limiter.hit("user:a")
    finally:
        await limiter.close()
    assert registry.get_sample_value("edge_rate_limit_storage_failures_total") == 6
    assert capsys.readouterr().out.count("edge.rate_limit_storage_failed") == 1
