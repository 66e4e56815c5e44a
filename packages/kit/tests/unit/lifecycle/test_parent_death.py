"""Children die with their parent, for real: a parent process is SIGKILLed, its child follows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CHILD = str(Path(__file__).with_name("child_server.py"))

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only"
)

PARENT = """
import sys
from stockflow_kit.lifecycle import ServiceProcess

child = ServiceProcess([sys.executable, sys.argv[1]], port_env="PORT", die_with_parent=sys.argv[2] == "1")
child.start()
sys.stdout.write(f"child {child.pid} {child.port}\\n")
sys.stdout.flush()
sys.stdin.read()  # until killed
"""


def gone(pid: int) -> bool:
    """Whether *pid* has exited (a zombie waiting for its new parent to reap it has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def wait_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def wait_ready(port: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the child on port {port} was not ready within {within} s")


@pytest.fixture
def orphans() -> Iterator[list[int]]:
    """Pids to SIGKILL at the end, whatever happened (children of a killed parent)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def start_parent(armed: bool) -> tuple[subprocess.Popen[str], int, int]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, "1" if armed else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    try:
        for line in parent.stdout:  # the parent's log lines come first
            if line.startswith("child "):
                _, pid, port = line.split()
                return parent, int(pid), int(port)
        raise AssertionError("the parent did not start its child")
    except BaseException:
        kill(parent)
        raise


def kill(parent: subprocess.Popen[str]) -> None:
    parent.kill()
    parent.wait()
    for stream in (parent.stdin, parent.stdout):
        if stream is not None:
            stream.close()


def test_a_child_dies_when_its_parent_is_killed(orphans: list[int]) -> None:
    parent, child, port = start_parent(armed=True)
    orphans.append(child)
    try:
        wait_ready(port)
    finally:
        kill(parent)

    assert wait_gone(child, within=5.0), f"the child {child} outlived its parent"


def test_without_the_parent_death_signal_the_child_outlives_its_parent(
    orphans: list[int],
) -> None:
    """The control: the same parent without ``die_with_parent`` leaves an orphan behind."""
    parent, child, port = start_parent(armed=False)
    orphans.append(child)
    try:
        wait_ready(port)
    finally:
        kill(parent)

    wait_ready(port)  # still answering with its parent dead
    assert not gone(child)


def test_a_child_whose_parent_is_already_gone_ends_itself_at_once() -> None:
    """The race check: the expected parent is not the real one, as if it had died already."""
    code = "from stockflow_kit.lifecycle import die_with_parent; die_with_parent(parent=1)\n"
    code += "import time; time.sleep(30)"

    finished = subprocess.run([sys.executable, "-c", code], timeout=20, check=False)

    assert finished.returncode == -signal.SIGTERM


def test_a_child_whose_parent_is_there_carries_on() -> None:
    code = "import os, sys; from stockflow_kit.lifecycle import die_with_parent\n"
    code += "sys.stdout.write(str(die_with_parent(signal := 9, parent=os.getppid())))"

    finished = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=True
    )

    assert finished.stdout == "True"
