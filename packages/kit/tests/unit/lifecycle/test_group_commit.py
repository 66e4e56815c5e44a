"""GroupCommit: concurrent callers share one commit; failures reach every caller of a batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.lifecycle import GroupCommit


class Store:
    """Records every batch it was asked to commit; fails the batches containing ``"bad"``."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def commit(self, items: Sequence[str]) -> list[str]:
        await self.release.wait()
        self.batches.append(list(items))
        if "bad" in items:
            raise OSError("disk full")
        return [item.upper() for item in items]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


async def test_callers_waiting_together_are_committed_in_one_batch(
    registry: CollectorRegistry,
) -> None:
    store = Store()
    group = GroupCommit("t", store.commit, registry=registry)
    await group.start()
    store.release.clear()  # the first commit blocks: the others queue up behind it
    first = asyncio.create_task(group.submit("a"))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(group.submit(x)) for x in ("b", "c", "d")]
    await asyncio.sleep(0.01)
    store.release.set()

    assert await first == "A"
    assert [await task for task in rest] == ["B", "C", "D"]
    assert store.batches == [["a"], ["b", "c", "d"]]
    assert registry.get_sample_value("group_commit_batch_size_sum", {"group": "t"}) == 4
    await group.stop()


async def test_a_lone_caller_is_committed_at_once() -> None:
    store = Store()
    group = GroupCommit("t", store.commit, registry=CollectorRegistry())
    await group.start()
    assert await asyncio.wait_for(group.submit("x"), 1) == "X"
    await group.stop()


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_is_tried(
    registry: CollectorRegistry,
) -> None:
    store = Store()
    group = GroupCommit("t", store.commit, registry=registry)
    await group.start()
    store.release.clear()
    blocker = asyncio.create_task(group.submit("first"))
    await asyncio.sleep(0.01)
    doomed = [asyncio.create_task(group.submit(x)) for x in ("ok", "bad")]
    await asyncio.sleep(0.01)
    store.release.set()
    await blocker
    for task in doomed:
        with pytest.raises(OSError, match="disk full"):
            await task
    assert await group.submit("later") == "LATER"
    assert await group.readiness() is None
    await group.stop()


async def test_batches_never_exceed_max_batch() -> None:
    store = Store()
    group = GroupCommit("t", store.commit, max_batch=2, registry=CollectorRegistry())
    await group.start()
    store.release.clear()
    tasks = [asyncio.create_task(group.submit(str(n))) for n in range(5)]
    await asyncio.sleep(0.01)
    store.release.set()
    await asyncio.gather(*tasks)
    assert max(len(batch) for batch in store.batches) == 2
    assert sorted(item for batch in store.batches for item in batch) == [str(n) for n in range(5)]
    await group.stop()


async def test_stop_commits_what_is_queued_and_refuses_what_comes_later() -> None:
    store = Store()
    group = GroupCommit("t", store.commit, registry=CollectorRegistry())
    await group.start()
    store.release.clear()
    queued = [asyncio.create_task(group.submit(x)) for x in ("a", "b")]
    await asyncio.sleep(0.01)
    stopping = asyncio.create_task(group.stop())
    await asyncio.sleep(0.01)
    store.release.set()
    await stopping
    assert [await task for task in queued] == ["A", "B"]
    with pytest.raises(RuntimeError, match="not running"):
        await group.submit("c")
    assert await group.readiness() == "t: not started"
