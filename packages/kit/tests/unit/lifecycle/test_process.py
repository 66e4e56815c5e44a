"""``ServiceProcess`` against a real child (``child_server.py``): readiness, scrapes, signals."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

import httpx
import pytest
from structlog.testing import capture_logs

from stockflow_kit.lifecycle import (
    ProcessExitedError,
    ProcessNotReadyError,
    ServiceProcess,
    free_port,
)

CHILD = str(Path(__file__).with_name("child_server.py"))
Spawn: TypeAlias = Callable[..., ServiceProcess]  # the ``child`` fixture (conftest.py)


async def test_a_started_process_becomes_ready_answers_scrapes_and_stops_on_sigterm(
    child: Spawn,
) -> None:
    service = child(GREETING="hello")
    service.start()
    try:
        await service.wait_ready(within=20)
        assert service.alive
        assert await service.metric("http_requests_total") == 5.0
        assert await service.metric("child_up") == 1.0
        assert await service.metric("child_absent_total") == 0.0
        assert "# TYPE http_requests_total counter" in await service.metrics()
        async with httpx.AsyncClient(base_url=service.base_url) as client:
            assert (await client.get("/env/GREETING")).text == "hello"
            assert (await client.get("/env/PORT")).text == str(service.port)
            assert (await client.get("/env/PATH")).status_code == 200  # os.environ is merged
    finally:
        code = service.terminate()

    assert code == 0
    assert not service.alive
    assert service.returncode == 0
    assert "child.terminated" in service.log_tail()
    assert f"child.started pid={service.pid}" in service.log_tail()


async def test_a_process_that_exits_before_it_is_ready_fails_fast_with_its_log_tail(
    child: Spawn,
) -> None:
    service = child(READY_AFTER="600", EXIT_AFTER="0.2", EXIT_CODE="3")
    service.start()

    with pytest.raises(ProcessExitedError) as raised:
        await service.wait_ready(within=60)

    assert raised.value.returncode == 3
    assert "child.started" in raised.value.log_tail
    assert service.returncode == 3


async def test_a_process_not_ready_in_time_is_reported_and_left_running(child: Spawn) -> None:
    service = child(READY_AFTER="600")
    service.start()
    try:
        with pytest.raises(ProcessNotReadyError, match=r"not ready within 0\.5 s"):
            await service.wait_ready(within=0.5)
        assert service.alive
    finally:
        service.kill()
    assert service.returncode == -signal.SIGKILL


async def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(
    child: Spawn,
) -> None:
    service = child(IGNORE_TERM="1")
    service.start()
    await service.wait_ready()

    with capture_logs() as logs:
        code = service.terminate(grace=0.3)

    assert code == -signal.SIGKILL
    assert [e["event"] for e in logs] == ["lifecycle.process_killed"]


async def test_the_async_stop_escalates_the_same_way_without_blocking_the_loop(
    child: Spawn,
) -> None:
    stubborn, polite = child(IGNORE_TERM="1"), child()
    stubborn.start()
    polite.start()
    await asyncio.gather(stubborn.wait_ready(), polite.wait_ready())
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while stubborn.alive:
            ticks += 1
            await asyncio.sleep(0.01)

    codes = await asyncio.gather(stubborn.stop(grace=0.3), polite.stop(), tick())

    assert codes[:2] == [-signal.SIGKILL, 0]
    assert ticks >= 10  # the loop kept running during the grace period


async def test_a_killed_process_can_be_started_again_on_the_same_port(child: Spawn) -> None:
    service = child()
    service.start()
    await service.wait_ready()
    first = service.pid

    service.kill()
    assert service.returncode == -signal.SIGKILL
    service.start()
    try:
        await service.wait_ready()
        assert service.pid != first
    finally:
        service.terminate()


async def test_starting_a_running_process_is_refused(child: Spawn) -> None:
    service = child()
    service.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            service.start()
    finally:
        service.kill()


async def test_a_process_never_started_has_no_state_and_cannot_be_waited_for() -> None:
    service = ServiceProcess([sys.executable, CHILD], port=8123)

    assert (service.pid, service.returncode, service.alive) == (None, None, False)
    assert service.base_url == "http://127.0.0.1:8123"
    assert service.name == Path(sys.executable).name
    assert service.log_tail() == ""
    service.kill()  # nothing to do
    with pytest.raises(RuntimeError, match="never started"):
        await service.wait_ready()
    with pytest.raises(RuntimeError, match="never started"):
        service.terminate()


def test_free_port_returns_a_bindable_port() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))

    assert 1024 <= port <= 65535
