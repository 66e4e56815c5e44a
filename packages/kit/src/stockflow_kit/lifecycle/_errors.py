"""The exceptions raised by :mod:`stockflow_kit.lifecycle` (the tree is in its docstring)."""

from __future__ import annotations


class LifecycleError(Exception):
    """Base class of the exceptions that the lifecycle toolkit raises on its own."""


class ProcessExitedError(LifecycleError):
    """A :class:`~stockflow_kit.lifecycle.ServiceProcess` exited before it was ready.

    Attributes:
        name: The process's name.
        returncode: Its exit code (negative: killed by that signal).
        log_tail: The end of its log ("" without a log file).
    """

    def __init__(self, name: str, returncode: int, log_tail: str) -> None:
        super().__init__(name, returncode, log_tail)
        self.name, self.returncode, self.log_tail = name, returncode, log_tail

    def __str__(self) -> str:
        return f"{self.name} exited with {self.returncode} before it was ready\n{self.log_tail}"


class ProcessNotReadyError(LifecycleError):
    """A :class:`~stockflow_kit.lifecycle.ServiceProcess` was not ready in the time given.

    Attributes:
        name: The process's name.
        within: The seconds it was given.
        log_tail: The end of its log ("" without a log file).
    """

    def __init__(self, name: str, within: float, log_tail: str) -> None:
        super().__init__(name, within, log_tail)
        self.name, self.within, self.log_tail = name, within, log_tail

    def __str__(self) -> str:
        return f"{self.name} was not ready within {self.within:g} s\n{self.log_tail}"
