"""The embedded deployment's data dir: checked, locked for one ``stockflow up``, and holding the
generated service credential.

Two ``stockflow up`` on one data dir would both run writers on the same files: fencing keeps
the data right, but the second one is refused at start with a clear message instead (an
exclusive ``flock`` on ``<dir>/.lock``, released when the process ends, however it ends).
The service credential of the embedded deployment is random, generated at first start into
``<dir>/service-token`` (mode 0600), never a well-known default; so is the secret edge signs
and checks the dev JWTs with (``<dir>/jwt-secret``, mode 0600; ``stockflow token`` reads it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from stockflow.platform.startup import StartupError

__all__ = ["JWT_SECRET_ENV", "JWT_SECRET_FILE", "TOKEN_FILE", "DataDir", "load_or_create_secret"]

TOKEN_FILE: Final = "service-token"
JWT_SECRET_FILE: Final = "jwt-secret"
JWT_SECRET_ENV: Final = "STOCKFLOW_JWT_SECRET"
"""The deployment's JWT secret when set; else the data dir's (``<dir>/jwt-secret``)."""
_LOCK_FILE: Final = ".lock"


def load_or_create_secret(path: Path, *, nbytes: int = 32) -> str:
    """The secret stored in *path*; a new random one (written with mode 0600) if missing."""
    flags = os.O_WRONLY | os.O_CREAT
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value, flags = "", flags | os.O_EXCL  # two processes creating it: one wins
    else:
        flags |= os.O_TRUNC  # an empty file: replaced
    if value:
        return value
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:  # another process created it meanwhile: theirs is the secret
        return load_or_create_secret(path, nbytes=nbytes)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


@dataclass
class DataDir:
    """An existing, writable data dir held by this process (see the module docstring)."""

    path: Path
    _lock: IO[str] | None = None

    @classmethod
    def open(cls, path: Path) -> DataDir:
        """Create *path* if missing, check it, and lock it.

        Raises:
            StartupError: not a directory, not writable, or in use by another process.
        """
        path = path.resolve()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StartupError(
                f"cannot create the data dir {path}: {error.strerror}; choose another --data-dir"
            ) from None
        if not path.is_dir():
            raise StartupError(f"the data dir {path} is not a directory; choose another --data-dir")
        if not os.access(path, os.W_OK | os.X_OK):
            raise StartupError(f"the data dir {path} is not writable; fix its permissions")
        data_dir = cls(path)
        data_dir._acquire()
        return data_dir

    def _acquire(self) -> None:
        lock_path = self.path / _LOCK_FILE
        handle = lock_path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StartupError(
                f"the data dir {self.path} is in use by another stockflow (pid {holder}):"
                " stop it first, or run this one with another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def service_token(self) -> str:
        """The deployment's service credential (generated at first start)."""
        return load_or_create_secret(self.path / TOKEN_FILE)

    def jwt_secret(self) -> str:
        """The HS256 secret of the deployment's dev JWTs (generated when first asked for).

        It needs no lock: ``stockflow token`` reads it while ``stockflow up`` holds the dir
        (``DataDir(path).jwt_secret()``, without :meth:`open`).
        """
        return load_or_create_secret(self.path / JWT_SECRET_FILE, nbytes=48)

    def release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
