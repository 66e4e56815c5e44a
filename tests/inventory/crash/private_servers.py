"""Private PostgreSQL and NATS JetStream servers that a test may stop, crash and restart.

The shared servers (127.0.0.1:5432 and :4222) serve other tests and people, so they are never
stopped. These run on free ports with their data in a temporary directory of their own, and
:meth:`destroy` stops them (if still running) and removes that directory.

PostgreSQL refuses to run as root, so when the tests run as root the cluster's directory
belongs to the ``postgres`` user and the server binaries run through ``runuser -u postgres``.

When a server binary is missing or the cluster cannot be created, :func:`unavailable` skips
the test, or fails it under ``STOCKFLOW_REQUIRE_SERVICES=1`` (CI: a missing capability is a
failure, not a skip).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn

import pytest
from tests.inventory.crash.worker_process import free_port

__all__ = ["PrivateNats", "PrivatePostgres", "unavailable"]

PG_BIN_ENV = "STOCKFLOW_TEST_PG_BIN"
NATS_SERVER_ENV = "STOCKFLOW_TEST_NATS_SERVER"


def unavailable(message: str) -> NoReturn:
    """Skip the test (locally) or fail it (``STOCKFLOW_REQUIRE_SERVICES=1``)."""
    if os.environ.get("STOCKFLOW_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def wait_for_port(port: int, *, within: float, alive: Callable[[], str | None]) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections; ``alive`` says why it never will."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if (reason := alive()) is not None:
            raise AssertionError(reason)
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {within}s")


def _tail(path: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


# ---------------------------------------------------------------------------- PostgreSQL
def _postgres_bin_dir() -> Path | None:
    if configured := os.environ.get(PG_BIN_ENV):
        return Path(configured)
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL cluster (trust auth, user ``postgres``) on a free port."""

    bin_dir: Path
    root: Path
    port: int = field(default_factory=free_port)
    as_user: str | None = None
    """Run the server binaries as this user (``postgres`` when we are root)."""

    @classmethod
    def create(cls) -> PrivatePostgres:
        """Find the binaries and ``initdb`` a new cluster; :func:`unavailable` if impossible."""
        bin_dir = _postgres_bin_dir()
        if bin_dir is None or not (bin_dir / "pg_ctl").exists():
            unavailable(
                "no PostgreSQL server binaries (initdb, pg_ctl) found: install the postgresql "
                f"package or set {PG_BIN_ENV}"
            )
        as_user = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root, and there is no 'postgres' user to run PostgreSQL")
            as_user = "postgres"
        root = Path(tempfile.mkdtemp(prefix="stockflow-pg-"))
        if as_user is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        server = cls(bin_dir=bin_dir, root=root, as_user=as_user)
        result = server._run("initdb", "-D", str(server.data), "-A", "trust", "-U", "postgres")
        if result.returncode != 0:
            server.destroy()
            unavailable(f"initdb failed ({result.returncode}):\n{result.stdout[-2000:]}")
        return server

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *args]
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
            cwd=self.root,  # runuser keeps the cwd, which the postgres user must be able to enter
        )

    def start(self) -> None:
        """Start the server (after a crash, this is its recovery) and wait until it accepts."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        result = self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"
        )
        assert result.returncode == 0, f"pg_ctl start failed:\n{result.stdout}\n{_tail(self.log)}"

    def stop(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        """``fast``: roll back the open transactions and shut down cleanly; ``immediate``:
        quit at once, as a crash would (the next start recovers from the WAL)."""
        result = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        assert result.returncode == 0, f"pg_ctl stop failed:\n{result.stdout}\n{_tail(self.log)}"

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the server if it runs (as a crash: nothing to keep) and remove its directory."""
        try:
            if self.running():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            if self.running():  # pg_ctl could not stop it: end the postmaster we started
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------- NATS
def _nats_server() -> Path | None:
    if configured := os.environ.get(NATS_SERVER_ENV):
        return Path(configured)
    found = shutil.which("nats-server") or "/usr/sbin/nats-server"
    return Path(found) if Path(found).exists() else None


@dataclass
class PrivateNats:
    """A nats-server with JetStream whose file store survives its restarts."""

    binary: Path
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls) -> PrivateNats:
        binary = _nats_server()
        if binary is None:
            unavailable(
                f"no nats-server binary found: install nats-server or set {NATS_SERVER_ENV}"
            )
        return cls(binary=binary, root=Path(tempfile.mkdtemp(prefix="stockflow-nats-")))

    @property
    def log(self) -> Path:
        return self.root / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start on the same port and store as before; wait until it accepts clients."""
        assert self.process is None or self.process.poll() is not None, "already running"
        store = self.root / "jetstream"
        command = [str(self.binary), "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, "-sd", str(store)],
                stdout=out,
                stderr=out,
            )
        process = self.process

        def exited() -> str | None:
            code = process.poll()
            return None if code is None else f"nats-server exited ({code}):\n{_tail(self.log)}"

        wait_for_port(self.port, within=15, alive=exited)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM: a clean shutdown; SIGKILL: a crash (JetStream recovers its store)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(15)

    def destroy(self) -> None:
        try:
            self.stop(signal.SIGKILL)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
