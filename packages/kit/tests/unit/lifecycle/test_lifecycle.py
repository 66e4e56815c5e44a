"""``Lifecycle``: start in order, roll back a failed start, stop in reverse, combined readiness."""

from __future__ import annotations

import asyncio

import pytest
from starlette.applications import Starlette
from structlog.testing import capture_logs

from stockflow_kit.lifecycle import Lifecycle


class Part:
    """A component that records what happens to it in a shared journal."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        *,
        fail_start: bool = False,
        fail_stop: bool = False,
        reason: str | None = None,
    ) -> None:
        self.name, self.journal = name, journal
        self.fail_start, self.fail_stop, self.reason = fail_start, fail_stop, reason

    async def start(self) -> None:
        if self.fail_start:
            raise ConnectionError(f"{self.name} cannot start")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} cannot stop")

    async def readiness(self) -> str | None:
        return self.reason


async def test_components_start_in_order_and_stop_in_reverse() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle([Part(n, journal) for n in "abc"], name="svc")

    with capture_logs() as logs:
        await lifecycle.start()
        assert lifecycle.started
        await lifecycle.stop()

    assert journal == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert not lifecycle.started
    events = [(e["event"], e.get("components")) for e in logs]
    assert events == [
        ("lifecycle.started", ["a", "b", "c"]),
        ("lifecycle.stopped", ["c", "b", "a"]),
    ]


async def test_a_failing_start_stops_the_started_ones_in_reverse_and_is_re_raised() -> None:
    journal: list[str] = []
    parts = [Part("a", journal), Part("b", journal), Part("c", journal, fail_start=True)]
    lifecycle = Lifecycle([*parts, Part("d", journal)], name="svc")

    with capture_logs() as logs, pytest.raises(ConnectionError, match="c cannot start"):
        await lifecycle.start()

    assert journal == ["start a", "start b", "stop b", "stop a"]
    assert not lifecycle.started
    (failed,) = [e for e in logs if e["event"] == "lifecycle.start_failed"]
    assert failed["component"] == "c"


async def test_a_cancelled_start_rolls_back_too() -> None:
    journal: list[str] = []
    entered = asyncio.Event()

    class Hanging(Part):
        async def start(self) -> None:
            entered.set()
            await asyncio.Event().wait()

    lifecycle = Lifecycle([Part("a", journal), Hanging("slow", journal)], name="svc")
    starting = asyncio.create_task(lifecycle.start())
    await entered.wait()
    starting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await starting
    assert journal == ["start a", "stop a"]


async def test_a_failing_stop_is_logged_and_the_others_still_stop() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle(
        [Part("a", journal), Part("b", journal, fail_stop=True), Part("c", journal)], name="svc"
    )
    await lifecycle.start()

    with capture_logs() as logs:
        await lifecycle.stop()

    assert journal[3:] == ["stop c", "stop b", "stop a"]
    (failed,) = [e for e in logs if e["event"] == "lifecycle.stop_failed"]
    assert failed["component"] == "b"
    assert failed["exc_info"] is True  # structlog's .exception(): the stack is logged


async def test_stop_is_idempotent_and_a_no_op_before_start() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle([Part("a", journal)], name="svc")

    await lifecycle.stop()
    await lifecycle.start()
    await asyncio.gather(lifecycle.stop(), lifecycle.stop())
    await lifecycle.stop()

    assert journal == ["start a", "stop a"]


async def test_a_started_lifecycle_refuses_a_second_start_and_can_start_again_after_stop() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle([Part("a", journal)], name="svc")
    await lifecycle.start()

    with pytest.raises(RuntimeError, match="already started"):
        await lifecycle.start()
    await lifecycle.stop()
    await lifecycle.start()
    await lifecycle.stop()

    assert journal == ["start a", "stop a", "start a", "stop a"]


def test_component_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        Lifecycle([Part("a", []), Part("a", [])], name="svc")


async def test_readiness_is_none_when_all_are_ready_else_the_reasons_by_name() -> None:
    journal: list[str] = []
    ready = Lifecycle([Part("a", journal), Part("b", journal)], name="svc")
    unready = Lifecycle(
        [
            Part("a", journal, reason="loading states"),
            Part("b", journal),
            Part("c", journal, reason="broker unreachable"),
        ],
        name="svc",
    )
    await ready.start()
    await unready.start()

    assert await ready.readiness() is None
    assert await unready.readiness() == "a: loading states; c: broker unreachable"


async def test_before_start_every_component_is_not_started() -> None:
    lifecycle = Lifecycle([Part("a", []), Part("b", [])], name="svc")

    assert await lifecycle.readiness() == "a: not started; b: not started"


async def test_a_probe_that_hangs_is_a_timeout_reason_and_one_that_raises_is_a_reason() -> None:
    class Hanging(Part):
        async def readiness(self) -> str | None:
            await asyncio.Event().wait()
            return None

    class Broken(Part):
        async def readiness(self) -> str | None:
            raise OSError("no route")

    lifecycle = Lifecycle(
        [Hanging("slow", []), Broken("broken", []), Part("fine", [])],
        name="svc",
        readiness_timeout=0.05,
    )
    await lifecycle.start()

    assert await lifecycle.readiness() == (
        "slow: no answer within 0.05 s; broken: readiness failed: OSError: no route"
    )


async def test_components_are_probed_concurrently() -> None:
    """Each probe answers only once the other one has begun: sequential probes would time out."""
    begun = {"a": asyncio.Event(), "b": asyncio.Event()}

    class Waiting(Part):
        async def readiness(self) -> str | None:
            begun[self.name].set()
            other = "b" if self.name == "a" else "a"
            await begun[other].wait()
            return None

    lifecycle = Lifecycle([Waiting("a", []), Waiting("b", [])], name="svc", readiness_timeout=1)
    await lifecycle.start()

    assert await lifecycle.readiness() is None


async def test_lifecycles_nest_as_components() -> None:
    journal: list[str] = []
    inner = Lifecycle([Part("x", journal, reason="warming")], name="inner")
    outer = Lifecycle([Part("a", journal), inner], name="outer")

    await outer.start()
    reason = await outer.readiness()
    await outer.stop()

    assert reason == "inner: x: warming"
    assert journal == ["start a", "start x", "stop x", "stop a"]


async def test_the_lifespan_starts_and_stops_a_starlette_app() -> None:
    journal: list[str] = []
    lifecycle = Lifecycle([Part("a", journal)], name="svc")
    app = Starlette(lifespan=lifecycle.lifespan)

    async with app.router.lifespan_context(app):
        assert lifecycle.started

    assert journal == ["start a", "stop a"]
