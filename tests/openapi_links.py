"""Following an OpenAPI document's links by hand, as a client (or schemathesis' stateful
phase) would: which operation each link of an answer names, and the request it makes of it
with the answer's values.

Only what our documents use is read: ``operationId`` targets and parameters given as
``$response.body#/<JSON pointer>`` runtime expressions.
"""

from __future__ import annotations

from typing import Any

__all__ = ["follow"]

_BODY = "$response.body#"


def _operation(spec: dict[str, Any], operation_id: str) -> tuple[str, str, dict[str, Any]]:
    found = [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and operation.get("operationId") == operation_id
    ]
    assert len(found) == 1, f"{operation_id!r} names {len(found)} operations"
    return found[0]


def _pointer(body: Any, pointer: str) -> Any:
    for token in pointer.lstrip("/").split("/"):
        body = body[token.replace("~1", "/").replace("~0", "~")]
    return body


def follow(
    spec: dict[str, Any], path: str, method: str, status: int, body: Any
) -> dict[str, tuple[str, str]]:
    """The links of *method* *path*'s *status* answer: name -> ``(METHOD, path)`` of the
    request each one makes with *body*, the answer. Fails when a link names no operation, or
    a parameter that is not one of its target's path parameters."""
    links = spec["paths"][path][method]["responses"][str(status)].get("links", {})
    requests: dict[str, tuple[str, str]] = {}
    for name, link in links.items():
        target_method, target_path, operation = _operation(spec, link["operationId"])
        in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        filled = target_path
        for parameter, expression in link["parameters"].items():
            assert parameter in in_path, f"{name}: {parameter!r} is not a path parameter"
            assert expression.startswith(_BODY), f"{name}: {expression!r} is not from the body"
            value = _pointer(body, expression.removeprefix(_BODY))
            filled = filled.replace(f"{{{parameter}}}", str(value))
        assert "{" not in filled, f"{name}: {filled} has an unfilled parameter"
        requests[name] = (target_method.upper(), filled)
    return requests
