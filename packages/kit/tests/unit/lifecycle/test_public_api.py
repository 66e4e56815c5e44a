"""The public names of ``stockflow_kit.lifecycle`` are pinned."""

from __future__ import annotations

import inspect
import pickle

import stockflow_kit.lifecycle as lifecycle
from stockflow_kit.lifecycle import LifecycleError, ProcessExitedError, ProcessNotReadyError


def test_the_public_api_is_pinned() -> None:
    assert sorted(lifecycle.__all__) == [
        "BackgroundTask",
        "Callbacks",
        "Component",
        "GroupCommit",
        "GroupCommitStoppedError",
        "Hook",
        "Lifecycle",
        "LifecycleError",
        "Periodic",
        "ProcessExitedError",
        "ProcessNotReadyError",
        "ReadinessProbe",
        "ServiceProcess",
        "Supervisor",
        "Work",
        "component",
        "die_with_parent",
        "free_port",
        "free_port_block",
        "parent_death_hook",
    ]
    assert all(hasattr(lifecycle, name) for name in lifecycle.__all__)


def test_every_public_name_has_a_docstring() -> None:
    undocumented = [
        name
        for name in lifecycle.__all__
        if inspect.isclass(getattr(lifecycle, name)) or inspect.isfunction(getattr(lifecycle, name))
        if not (getattr(lifecycle, name).__doc__ or "").strip()
    ]
    assert undocumented == []


def test_the_errors_are_lifecycle_errors_and_survive_pickling() -> None:
    exited = pickle.loads(pickle.dumps(ProcessExitedError("inventory", -9, "tail")))
    late = pickle.loads(pickle.dumps(ProcessNotReadyError("inventory", 2.5, "tail")))

    assert (exited.name, exited.returncode, exited.log_tail) == ("inventory", -9, "tail")
    assert (late.name, late.within) == ("inventory", 2.5)
    assert isinstance(exited, LifecycleError)
    assert isinstance(late, LifecycleError)
    assert "exited with -9" in str(exited)
