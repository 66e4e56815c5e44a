"""The baseline applications of ``stockflow bench http``, and the process that serves one.

Three FastAPI applications with the same route, ``GET /inventory/{sku}`` answering the
stock JSON a service read answers (encoded by msgspec, as the inventory does):

* ``bare``: the route alone, the baseline every ratio is taken against;
* ``kit``: the same plus :func:`stockflow_kit.http.instrument` without the access log;
* ``kit_logging``: the same plus :func:`stockflow_kit.observability.configure_logging` (JSON
  lines on standard error) and one access line per request;
* ``kit_sampled``: as ``kit_logging`` with ``log_sample_rate=0.1`` (errors and slow requests
  would still all be written).

Each also has ``GET /readyz`` so the bench can wait for it. Run one with
``python -m stockflow.bench.http_apps <app> --port N [--server uvicorn|granian]``; uvicorn is
started as ``stockflow serve`` starts it (``log_config=None``, no uvicorn access log,
httptools and uvloop when installed).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Annotated, Final

import msgspec
from fastapi import FastAPI, Path
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from stockflow_kit.http import instrument
from stockflow_kit.observability import configure_logging

__all__ = ["APPS", "SERVERS", "bare_app", "kit_app", "kit_logging_app", "kit_sampled_app", "main"]

SERVERS: Final = ("uvicorn", "granian")
"""The ASGI servers a baseline application can run under."""

Sku = Annotated[str, Path(min_length=1, max_length=200)]


class _Stock(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    on_hand: int
    reserved: int
    available: int
    version: int


def _routes() -> FastAPI:
    app = FastAPI(title="stockflow bench baseline")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/inventory/{sku}")
    async def get_stock(sku: Sku) -> Response:
        stock = _Stock(sku=sku, on_hand=5, reserved=0, available=5, version=1)
        return Response(msgspec.json.encode(stock), media_type="application/json")

    return app


def bare_app() -> FastAPI:
    """The route alone: no kit middleware, no logging configured."""
    return _routes()


def kit_app() -> FastAPI:
    """The route under ``instrument(app, log_requests=False)``."""
    app = _routes()
    instrument(app, service="bench", registry=CollectorRegistry(), log_requests=False)
    return app


def kit_logging_app() -> FastAPI:
    """The route under ``instrument(app)``, with JSON logging configured (one access line each)."""
    configure_logging(json=True, level="INFO", service="bench")
    app = _routes()
    instrument(app, service="bench", registry=CollectorRegistry(), log_requests=True)
    return app


def kit_sampled_app() -> FastAPI:
    """As :func:`kit_logging_app`, with one access line per 10 fast successful requests."""
    configure_logging(json=True, level="INFO", service="bench")
    app = _routes()
    instrument(app, service="bench", registry=CollectorRegistry(), log_sample_rate=0.1)
    return app


APPS: Final[dict[str, Callable[[], FastAPI]]] = {
    "bare": bare_app,
    "kit": kit_app,
    "kit_logging": kit_logging_app,
    "kit_sampled": kit_sampled_app,
}
"""The baseline applications by name."""


def _serve_uvicorn(name: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        f"stockflow.bench.http_apps:{APPS[name].__name__}",
        factory=True,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )


def _serve_granian(name: str, port: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        f"stockflow.bench.http_apps:{APPS[name].__name__}",
        factory=True,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        log_access=False,
    ).serve()


def main(argv: list[str] | None = None) -> None:
    """Serve one baseline application until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    args = parser.parse_args(argv)
    if args.server == "granian":
        _serve_granian(args.app, args.port)
    else:
        _serve_uvicorn(args.app, args.port)


if __name__ == "__main__":
    main()
