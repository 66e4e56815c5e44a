"""Find the processes a test started that outlive it, orphans included.

Every process started during a crash test inherits a unique environment variable (the
*mark*), and so do their children: the writer's feeder, PostgreSQL's postmaster. Reading
``/proc/<pid>/environ`` finds them wherever they were reparented (PPID 1 after their parent
was SIGKILLed), which a walk of the test process's children would miss.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

MARK = "STOCKFLOW_TEST_PROCESS_MARK"
FEEDER_MODULE = "stockflow.inventory.entrypoints.feeder"


@dataclass(frozen=True)
class Survivor:
    pid: int
    ppid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} (ppid {self.ppid}): {self.command[:200]}"


def marked(mark: str) -> list[Survivor]:
    """The live processes (zombies excluded) whose environment carries *mark*."""
    needle = f"{MARK}={mark}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes() + b"\0":
                continue
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # exited meanwhile, or not ours to read
        if state not in {"Z", "X"}:
            found.append(Survivor(int(entry.name), int(ppid), command.strip()))
    return found


def survivors(mark: str, *, grace: float) -> list[Survivor]:
    """The processes carrying *mark* still alive after *grace* seconds (polled)."""
    deadline = time.monotonic() + grace
    while (alive := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def kill(found: list[Survivor]) -> None:
    for each in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(each.pid, signal.SIGKILL)


def report(found: list[Survivor], grace: float) -> str:
    lines = [f"{len(found)} process(es) started by this test outlived it by {grace:g} s:"]
    lines += [f"  {each}" for each in found]
    if any(FEEDER_MODULE in each.command for each in found):
        lines.append(
            "The inventory's feeder child outlived its writer. It must die with it: "
            "FeederProcess._spawn (src/stockflow/inventory/entrypoints/feeder.py) should pass "
            "preexec_fn=stockflow_kit.lifecycle.parent_death_hook() to create_subprocess_exec."
        )
    lines.append("They were SIGKILLed.")
    return "\n".join(lines)
