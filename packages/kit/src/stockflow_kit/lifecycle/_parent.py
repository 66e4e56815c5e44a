"""Children that die with their parent: ``PR_SET_PDEATHSIG`` on Linux, and the race it leaves.

``prctl(PR_SET_PDEATHSIG, sig)`` asks the kernel to send *sig* to the calling process when its
parent goes away, however it goes (``SIGKILL`` included). Two caveats shape the API:

- The setting is armed *after* the fork, so a parent that dies between the fork and the
  ``prctl`` call is missed. Comparing :func:`os.getppid` with the pid the parent had closes
  that race: if it differs, the parent is already gone and the child ends itself at once.
- "Parent" is the *thread* that forked: a child started from a worker thread gets the signal
  when that thread ends. Start children from a long-lived thread (the event loop's).

The setting survives ``exec`` (except of set-uid programs) and is not inherited by the
child's own children: each generation arms it for itself.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent", "parent_death_hook"]

_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    prctl: Callable[..., int] = libc.prctl
    return prctl


def _arm(prctl: Callable[..., int], sig: int, parent: int | None) -> None:
    if prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    if parent is not None and os.getppid() != parent:
        # The parent died before the signal was armed: end as if it had been delivered.
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # only reached if the signal is blocked


def die_with_parent(sig: int = signal.SIGTERM, *, parent: int | None = None) -> bool:
    """Ask the kernel to send *sig* to this process when its parent dies (Linux only).

    Call it first thing in a child process, passing the pid its parent had, e.g. from the
    command line or the environment::

        die_with_parent(parent=int(os.environ["MY_PARENT_PID"]))

    or from the parent, as ``preexec_fn`` of :class:`subprocess.Popen` (or of
    :func:`asyncio.create_subprocess_exec`) via :func:`parent_death_hook`.

    Args:
        sig: The signal to receive; ``SIGTERM`` by default, so that the child can shut down
            cleanly (use ``SIGKILL`` for a child that may ignore or hang on ``SIGTERM``).
        parent: The pid the parent is expected to have. If :func:`os.getppid` differs, the
            parent is already gone: the default action of *sig* is restored and *sig* is
            sent to this process now. ``None``: no such check (the race stays open).

    Returns:
        ``True`` if armed; ``False`` on a platform without ``PR_SET_PDEATHSIG``.

    Raises:
        OSError: If ``prctl`` refused (e.g. an invalid signal number).
    """
    prctl = _prctl()
    if prctl is None:
        return False
    _arm(prctl, int(sig), parent)
    return True


def parent_death_hook(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """Return a ``preexec_fn`` that makes the child die with the *calling* process.

    The hook runs :func:`die_with_parent` in the child with ``parent=os.getpid()`` of the
    caller; ``prctl`` is looked up here, before the fork, so the child only makes the call::

        subprocess.Popen(argv, preexec_fn=parent_death_hook())

    Returns ``None`` (no hook needed or possible) on a platform without ``PR_SET_PDEATHSIG``.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    return functools.partial(_arm, prctl, int(sig), os.getpid())
