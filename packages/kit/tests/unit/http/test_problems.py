from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from stockflow_kit.http import (
    INTERNAL_ERROR_DETAIL,
    CorrelationMiddleware,
    ErrorMapping,
    ErrorTable,
    Problem,
    ProblemMiddleware,
    install_problem_handlers,
    problem_response,
    status_title,
    validation_error_response,
)
from stockflow_kit.observability import bind_correlation


class InventoryError(Exception):
    pass


class InsufficientStockError(InventoryError):
    pass


class BelowReservedError(InventoryError):
    pass


class SKUNotFoundError(Exception):
    pass


class Reservation(BaseModel):
    sku: str
    quantity: int


SECRET = "db password is hunter2"


def _fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/stock/{sku}")
    async def read_stock(sku: str) -> dict[str, str]:
        if sku == "missing":
            raise HTTPException(404, detail=f"No stock record for {sku}.")
        if sku == "structured":
            raise HTTPException(409, detail={"sku": sku, "reason": "locked"})
        if sku == "teapot":
            raise HTTPException(418, headers={"X-Brew": "no"})
        return {"sku": sku}

    @app.post("/reservations")
    async def reserve(reservation: Reservation) -> dict[str, str]:
        if reservation.quantity > 10:
            raise InsufficientStockError(f"{reservation.sku}: only 10 available")
        if reservation.quantity < 0:
            raise BelowReservedError("")
        return {"sku": reservation.sku}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError(SECRET)

    @app.get("/grouped")
    async def grouped() -> None:
        raise ExceptionGroup("task group", [InsufficientStockError("SKU-1: none left")])

    table = ErrorTable(
        {
            InventoryError: (409, "Inventory conflict"),
            InsufficientStockError: (409, "Insufficient stock"),
        }
    )
    install_problem_handlers(app, table)
    app.add_middleware(CorrelationMiddleware)
    return app


def _assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail", "correlation_id"} <= body.keys()
    assert body["status"] == status
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]
    assert "Traceback" not in response.text
    return body


async def test_an_unknown_route_is_a_404_problem(send) -> None:
    body = _assert_problem(await send(_fastapi_app(), "GET", "/nowhere"), 404)

    assert body["type"] == "about:blank"
    assert body["title"] == "Not Found"
    assert body["detail"] == "No resource exists at this path."
    assert body["instance"] == "/nowhere"


async def test_a_wrong_method_is_a_405_problem_that_keeps_the_allow_header(send) -> None:
    response = await send(_fastapi_app(), "DELETE", "/stock/SKU-1")

    body = _assert_problem(response, 405)
    assert response.headers["Allow"] == "GET"
    assert body["title"] == "Method Not Allowed"


async def test_a_405_allows_the_methods_of_every_route_of_the_path(send) -> None:
    app = FastAPI()

    @app.get("/orders")
    async def list_orders() -> list[str]:
        return []

    @app.post("/orders")
    async def place() -> dict[str, str]:
        return {}

    install_problem_handlers(app, ErrorTable({}))
    app.add_middleware(CorrelationMiddleware)
    response = await send(app, "DELETE", "/orders")

    _assert_problem(response, 405)
    assert response.headers["Allow"] == "GET, POST"


async def test_malformed_json_is_a_422_problem(send) -> None:
    response = await send(
        _fastapi_app(),
        "POST",
        "/reservations",
        content=b'{"sku": ',
        headers={"content-type": "application/json"},
    )

    body = _assert_problem(response, 422)
    assert body["type"] == "/problems/validation-error"
    assert body["detail"] == "The request body is not valid JSON."
    assert body["errors"][0]["type"] == "json_invalid"


async def test_an_invalid_field_is_a_422_problem_listing_it_without_echoing_input(send) -> None:
    huge = "not a number " * 400

    response = await send(
        _fastapi_app(), "POST", "/reservations", json={"sku": "SKU-1", "quantity": huge}
    )

    body = _assert_problem(response, 422)
    assert body["title"] == "Request validation failed"
    assert body["detail"] == "The request has 1 invalid field(s)."
    assert body["errors"] == [
        {"loc": ["body", "quantity"], "msg": body["errors"][0]["msg"], "type": "int_parsing"}
    ]
    assert "not a number" not in response.text
    assert len(response.content) < 1000


async def test_an_http_exception_keeps_its_status_detail_and_headers(send) -> None:
    app = _fastapi_app()

    missing = _assert_problem(await send(app, "GET", "/stock/missing"), 404)
    teapot_response = await send(app, "GET", "/stock/teapot")
    teapot = _assert_problem(teapot_response, 418)
    structured = _assert_problem(await send(app, "GET", "/stock/structured"), 409)

    assert missing["detail"] == "No stock record for missing."
    assert teapot["title"] == teapot["detail"] == "I'm a Teapot"
    assert teapot_response.headers["X-Brew"] == "no"
    assert structured["detail"] == "Conflict"
    assert structured["context"] == {"sku": "structured", "reason": "locked"}


async def test_a_mapped_exception_becomes_its_row_and_a_subclass_maps_like_its_base(send) -> None:
    app = _fastapi_app()

    insufficient = await send(app, "POST", "/reservations", json={"sku": "SKU-1", "quantity": 11})
    below = await send(app, "POST", "/reservations", json={"sku": "SKU-1", "quantity": -1})

    body = _assert_problem(insufficient, 409)
    assert body["type"] == "/problems/insufficient-stock"
    assert body["title"] == "Insufficient stock"
    assert body["detail"] == "SKU-1: only 10 available"
    inherited = _assert_problem(below, 409)
    assert inherited["type"] == "/problems/inventory"
    assert inherited["title"] == inherited["detail"] == "Inventory conflict"


async def test_a_single_exception_in_a_group_is_mapped_like_the_exception(send) -> None:
    body = _assert_problem(await send(_fastapi_app(), "GET", "/grouped"), 409)

    assert body["title"] == "Insufficient stock"


async def test_an_unexpected_exception_is_a_500_problem_without_its_text(send) -> None:
    response = await send(_fastapi_app(), "GET", "/crash")

    body = _assert_problem(response, 500)
    assert body["title"] == "Internal Server Error"
    assert body["detail"] == INTERNAL_ERROR_DETAIL
    assert SECRET not in response.text
    assert "RuntimeError" not in response.text


async def test_an_unexpected_exception_is_logged_once_with_the_correlation_id(send) -> None:
    with capture_logs() as logs:
        response = await send(
            _fastapi_app(), "GET", "/crash", headers={"X-Correlation-ID": "req-12345678"}
        )

    [line] = [log for log in logs if log["event"] == "http.unhandled_exception"]
    assert response.headers["X-Correlation-ID"] == "req-12345678"
    assert line["log_level"] == "error"
    assert line["correlation_id"] == "req-12345678"
    assert line["error_type"] == "RuntimeError"
    assert isinstance(line["exc_info"], RuntimeError)
    assert (line["method"], line["path"]) == ("GET", "/crash")


async def test_an_exception_after_the_response_started_is_logged_and_reraised(drive) -> None:
    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("mid-stream")

    with capture_logs() as logs, pytest.raises(RuntimeError, match="mid-stream"):
        await drive(ProblemMiddleware(streaming), method="GET")

    assert [log["event"] for log in logs] == ["http.unhandled_exception"]


async def test_an_exception_raised_outside_the_problem_middleware_still_gets_a_problem() -> None:
    class Exploding:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            raise RuntimeError(SECRET)

    app = Starlette(routes=[Route("/", PlainTextResponse("x"))])
    install_problem_handlers(app)
    app.add_middleware(Exploding)
    # Starlette's ServerErrorMiddleware answers with our last-resort handler, then re-raises.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    with capture_logs() as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == INTERNAL_ERROR_DETAIL
    assert SECRET not in response.text
    assert [log["event"] for log in logs] == ["http.unhandled_exception"]


async def test_an_http_exception_raised_outside_starlettes_handlers_is_still_a_problem(
    drive,
) -> None:
    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        raise HTTPException(599, headers={"X-Why": "odd"})

    messages = await drive(ProblemMiddleware(bare), path="/odd")

    assert messages[0]["status"] == 599
    assert (b"x-why", b"odd") in messages[0]["headers"]
    body = json.loads(messages[1]["body"])
    assert (body["title"], body["detail"], body["instance"]) == ("Error", "Error", "/odd")


async def test_non_http_scopes_pass_through_the_problem_middleware() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        pass

    await ProblemMiddleware(app)({"type": "lifespan"}, receive, send)

    assert seen == ["lifespan"]


async def test_handlers_cannot_be_installed_on_a_started_application(send) -> None:
    app = Starlette(routes=[Route("/", PlainTextResponse("x"))])
    await send(app, "GET", "/")

    with pytest.raises(RuntimeError, match="before the application starts"):
        install_problem_handlers(app)


async def test_rows_added_after_installation_take_effect(send) -> None:
    async def fail(request: Request) -> Response:
        raise SKUNotFoundError("SKU-9")

    table = ErrorTable()
    app = Starlette(routes=[Route("/", fail)])
    install_problem_handlers(app, table)
    table.add(SKUNotFoundError, 404, "Unknown SKU")

    response = await send(app, "GET", "/")

    assert response.status_code == 404
    assert response.json()["type"] == "/problems/sku-not-found"


def test_lookup_follows_the_mro_and_prefers_the_closest_row() -> None:
    table = ErrorTable({InventoryError: (409, "Inventory conflict")})
    table.add(InsufficientStockError, 422, "Insufficient stock", slug="no-stock")

    assert table.lookup(BelowReservedError()) == ErrorMapping(
        409, "Inventory conflict", "inventory"
    )
    assert table.lookup(InsufficientStockError) == ErrorMapping(
        422, "Insufficient stock", "no-stock"
    )
    assert table.lookup(KeyError()) is None
    assert table.problem_for(KeyError()) is None
    assert list(table) == [InventoryError, InsufficientStockError]
    assert len(table) == 2


def test_slugs_come_from_class_names_unless_given() -> None:
    class HTTPTimeoutError(Exception):
        pass

    class Error(Exception):
        pass

    table = ErrorTable(
        {
            HTTPTimeoutError: (504, "Timeout"),
            Error: (500, "Error"),
            KeyError: (404, "Nope", "gone"),
        },
        type_base="https://errors.example.com/",
    )

    assert [table.lookup(cls).slug for cls in table] == ["http-timeout", "error", "gone"]
    assert table.type_uri("gone") == "https://errors.example.com/gone"


def test_a_problem_fills_in_the_title_detail_and_bound_correlation_id() -> None:
    with bind_correlation("req-12345678"):
        body = Problem(status=503, extra={"status": 200, "retry": True}).to_dict()

    assert body == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "Service Unavailable",
        "correlation_id": "req-12345678",
        "retry": True,
    }


def test_a_problem_response_is_problem_json_with_the_given_headers() -> None:
    response = problem_response(
        409,
        title="Insufficient stock",
        detail="SKU-1: only 3 available",
        type="/problems/insufficient-stock",
        instance="/reservations",
        correlation_id="req-12345678",
        headers={"Retry-After": "1"},
        extra={"available": 3},
    )

    assert response.status_code == 409
    assert response.media_type == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    assert json.loads(response.body) == {
        "type": "/problems/insufficient-stock",
        "title": "Insufficient stock",
        "status": 409,
        "detail": "SKU-1: only 3 available",
        "instance": "/reservations",
        "correlation_id": "req-12345678",
        "available": 3,
    }


@pytest.mark.parametrize(
    ("status", "title"),
    [
        (404, "Not Found"),
        (413, "Content Too Large"),
        (422, "Unprocessable Content"),
        (599, "Error"),
    ],
)
def test_titles_are_the_rfc_9110_reason_phrases(status: int, title: str) -> None:
    assert status_title(status) == title


def test_validation_errors_are_capped_and_odd_entries_are_kept_short() -> None:
    errors: list[object] = [{"loc": ("body", "x" * 500, 3), "msg": "m" * 500, "type": "t"}]
    errors += ["not a dict"] + [{"type": "missing"}] * 100

    response = validation_error_response(errors, table=ErrorTable())

    body = json.loads(response.body)
    assert len(body["errors"]) == 50
    assert body["errors"][0] == {"loc": ["body", "x" * 200, 3], "msg": "m" * 200, "type": "t"}
    assert body["errors"][1] == {"loc": [], "msg": "not a dict", "type": "invalid"}
    assert body["errors"][2] == {"loc": [], "msg": "", "type": "missing"}
    assert body["detail"] == "The request has 102 invalid field(s)."


def test_update_merges_rows_into_a_table_and_replaces_those_of_the_same_class() -> None:
    table = ErrorTable({KeyError: (404, "Not found"), ValueError: (400, "Bad value")})

    returned = table.update({ValueError: (422, "Invalid", "invalid"), OSError: (503, "Down")})

    assert returned is table
    assert [table.lookup(e) for e in (KeyError, ValueError, OSError)] == [
        ErrorMapping(404, "Not found", "key"),
        ErrorMapping(422, "Invalid", "invalid"),
        ErrorMapping(503, "Down", "os"),
    ]
