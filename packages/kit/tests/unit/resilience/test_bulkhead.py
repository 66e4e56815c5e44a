import asyncio

import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.resilience import Bulkhead, BulkheadFullError


def value(registry: CollectorRegistry, metric: str, **labels: str) -> float | None:
    return registry.get_sample_value(metric, {"name": "inventory", **labels})


async def test_no_more_than_max_concurrent_calls_run_at_once(
    registry: CollectorRegistry,
) -> None:
    bulkhead = Bulkhead("inventory", max_concurrent=2, queue_timeout=60, registry=registry)
    running = peak = 0

    async def work() -> None:
        nonlocal running, peak
        async with bulkhead:
            running += 1
            peak = max(peak, running)
            for _ in range(3):
                await asyncio.sleep(0)
            running -= 1

    await asyncio.gather(*(work() for _ in range(7)))

    assert peak == 2
    assert (bulkhead.in_use, bulkhead.queued) == (0, 0)


async def test_waiting_callers_get_slots_first_in_first_out(registry: CollectorRegistry) -> None:
    bulkhead = Bulkhead("inventory", max_concurrent=1, queue_timeout=60, registry=registry)
    order: list[int] = []
    gate = asyncio.Event()

    async def work(n: int) -> None:
        async with bulkhead:
            order.append(n)
            await gate.wait()

    tasks = []
    for n in range(4):
        tasks.append(asyncio.create_task(work(n)))
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)

    assert order == [0, 1, 2, 3]


async def test_the_gauges_show_slots_in_use_and_callers_queued(
    registry: CollectorRegistry,
) -> None:
    bulkhead = Bulkhead("inventory", max_concurrent=1, queue_timeout=60, registry=registry)
    gate = asyncio.Event()

    async def work() -> None:
        async with bulkhead:
            await gate.wait()

    tasks = [asyncio.create_task(work()) for _ in range(3)]
    await asyncio.sleep(0)

    assert value(registry, "bulkhead_in_use") == 1
    assert value(registry, "bulkhead_queued") == 2
    gate.set()
    await asyncio.gather(*tasks)
    assert value(registry, "bulkhead_in_use") == 0
    assert value(registry, "bulkhead_queued") == 0


async def test_a_full_queue_rejects_at_once(registry: CollectorRegistry) -> None:
    bulkhead = Bulkhead(
        "inventory", max_concurrent=1, max_queue=1, queue_timeout=60, registry=registry
    )
    gate = asyncio.Event()

    async def work() -> None:
        async with bulkhead:
            await gate.wait()

    tasks = [asyncio.create_task(work()) for _ in range(2)]
    await asyncio.sleep(0)

    with pytest.raises(BulkheadFullError) as caught:
        async with bulkhead:
            pytest.fail("a full bulkhead must not run the block")
    assert (caught.value.name, caught.value.reason) == ("inventory", "queue_full")
    assert value(registry, "bulkhead_rejections_total", reason="queue_full") == 1
    gate.set()
    await asyncio.gather(*tasks)


async def test_a_caller_that_waits_longer_than_queue_timeout_is_rejected(
    registry: CollectorRegistry,
) -> None:
    bulkhead = Bulkhead("inventory", max_concurrent=1, queue_timeout=0.0, registry=registry)
    gate = asyncio.Event()

    async def hold() -> None:
        async with bulkhead:
            await gate.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)

    with pytest.raises(BulkheadFullError, match="queue_timeout"):
        async with bulkhead:
            pytest.fail("a timed-out caller must not run the block")
    assert value(registry, "bulkhead_rejections_total", reason="queue_timeout") == 1
    assert bulkhead.queued == 0
    gate.set()
    await holder
    assert bulkhead.in_use == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_the_slot_goes_to_the_next(
    registry: CollectorRegistry,
) -> None:
    bulkhead = Bulkhead("inventory", max_concurrent=1, queue_timeout=60, registry=registry)
    gate = asyncio.Event()
    served: list[str] = []

    async def work(name: str) -> None:
        async with bulkhead:
            served.append(name)
            await gate.wait()

    await bulkhead.__aenter__()  # the test itself holds the only slot
    served.append("test")
    doomed = asyncio.create_task(work("doomed"))
    last = asyncio.create_task(work("last"))
    await asyncio.sleep(0)
    doomed.cancel()  # its queue entry is cancelled but still queued...
    await bulkhead.__aexit__(None, None, None)  # ...so the slot skips it
    gate.set()
    await asyncio.gather(doomed, last, return_exceptions=True)

    assert doomed.cancelled()
    assert served == ["test", "last"]
    assert (bulkhead.in_use, bulkhead.queued) == (0, 0)


async def test_a_waiter_cancelled_after_its_slot_arrived_passes_the_slot_on(
    registry: CollectorRegistry,
) -> None:
    bulkhead = Bulkhead("inventory", max_concurrent=1, queue_timeout=60, registry=registry)
    gate = asyncio.Event()
    served: list[str] = []

    async def work(name: str) -> None:
        async with bulkhead:
            served.append(name)
            await gate.wait()

    await bulkhead.__aenter__()  # the test itself holds the only slot
    unlucky = asyncio.create_task(work("unlucky"))
    last = asyncio.create_task(work("last"))
    await asyncio.sleep(0)
    await bulkhead.__aexit__(None, None, None)  # hands the slot to "unlucky", not yet running
    unlucky.cancel()
    gate.set()
    await asyncio.gather(unlucky, last, return_exceptions=True)

    assert unlucky.cancelled()
    assert served == ["last"]
    assert (bulkhead.in_use, bulkhead.queued) == (0, 0)


async def test_a_slot_that_arrives_together_with_the_timeout_is_kept(
    registry: CollectorRegistry,
) -> None:
    bulkhead = Bulkhead("inventory", max_concurrent=1, queue_timeout=0.0, registry=registry)
    served: list[str] = []

    async def work() -> None:
        async with bulkhead:
            served.append("waiter")

    await bulkhead.__aenter__()
    waiter = asyncio.create_task(work())
    await asyncio.sleep(0)  # the waiter queues; its zero timeout is already scheduled
    await bulkhead.__aexit__(None, None, None)  # the slot is granted before the timeout runs
    await waiter

    assert served == ["waiter"]
    assert value(registry, "bulkhead_rejections_total", reason="queue_timeout") is None
    assert (bulkhead.in_use, bulkhead.queued) == (0, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_concurrent": 0},
        {"max_concurrent": 1, "max_queue": -1},
        {"max_concurrent": 1, "queue_timeout": -1},
    ],
)
def test_invalid_settings_are_refused(
    kwargs: dict[str, float], registry: CollectorRegistry
) -> None:
    with pytest.raises(ValueError, match="must"):
        Bulkhead("inventory", registry=registry, **kwargs)  # type: ignore[arg-type]
