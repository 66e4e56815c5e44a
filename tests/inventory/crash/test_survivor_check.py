"""The crash tests' survivor check finds an orphan its test left behind, wherever it went."""

from __future__ import annotations

import os
import subprocess

from tests.inventory.crash import survivors


def test_an_orphaned_grandchild_is_found_by_its_mark_and_can_be_killed() -> None:
    mark = os.environ[survivors.MARK]  # set by the autouse fixture of this directory
    spawned = subprocess.run(
        ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = int(spawned.stdout)

    found = survivors.survivors(mark, grace=0.2)
    survivors.kill(found)

    assert [s.pid for s in found] == [orphan]
    assert "sleep 60" in found[0].command
    assert survivors.survivors(mark, grace=5.0) == []


def test_the_report_names_the_feeder_and_the_fix() -> None:
    feeder = survivors.Survivor(4242, 1, f"python -m {survivors.FEEDER_MODULE} {{}}")

    report = survivors.report([feeder], 10.0)

    assert "pid 4242 (ppid 1)" in report
    assert "parent_death_hook" in report
