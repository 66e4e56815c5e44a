"""Consumer-driven contracts (pact-python): the pact files live in ``pacts/`` at the repo root.

``PACT_DO_NOT_TRACK`` is set here, before any test module imports pact, so the FFI never
phones home (the Makefile and CI set it too).
"""

from __future__ import annotations

import os

os.environ["PACT_DO_NOT_TRACK"] = "true"

import pytest


@pytest.fixture(autouse=True)
def _close_pact_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """pact-python 4.2's state-handler and message servers call ``shutdown()`` but never
    ``server_close()``, so their listening socket leaks (a ResourceWarning, an error under
    ``filterwarnings = error``): close it when they shut down."""
    from pact._server import HandlerHttpServer

    original = HandlerHttpServer.shutdown

    def shutdown(self: HandlerHttpServer) -> None:  # type: ignore[type-arg]
        original(self)
        self.server_close()

    monkeypatch.setattr(HandlerHttpServer, "shutdown", shutdown)
