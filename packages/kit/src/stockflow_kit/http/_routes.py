"""Low-cardinality labels for a request: the matched route template and the method."""

from __future__ import annotations

from typing import Final

from starlette.routing import Mount
from starlette.types import Scope

UNMATCHED: Final = "<unmatched>"
"""The route label of requests that matched no route (404s, and those rejected before routing)."""

OTHER_METHOD: Final = "_OTHER"
"""The method label of requests whose method is not a standard one (as in OTel semconv)."""

_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)


def route_template(scope: Scope, *, root_path: str = "") -> str | None:
    """Return the template of the route the router picked for *scope*, or ``None``.

    Starlette's router stores the matched route in ``scope["route"]`` (for a 405 too) and
    extends ``root_path`` by each mount it goes through; both are read after the request has
    been handled. *root_path* is ``scope["root_path"]`` as the caller saw it *before*
    routing, so a deployment prefix (uvicorn's ``--root-path``) is left out of the label
    while mount prefixes are kept: ``/sub/x/{a}``. A mount that is not itself routed gives
    ``<mount>/{path}``.
    """
    route = scope.get("route")
    path_format = getattr(route, "path_format", None)
    if not isinstance(path_format, str):
        return None
    prefix = str(scope.get("root_path", "")).removeprefix(root_path)
    if isinstance(route, Mount):
        return prefix + "/{path}"
    return prefix + path_format


def method_label(method: str) -> str:
    """Return *method* if it is a standard HTTP method, else :data:`OTHER_METHOD`.

    The method comes from the client; bounding it keeps metric cardinality bounded.
    """
    return method if method in _METHODS else OTHER_METHOD
