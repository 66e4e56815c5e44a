"""``GET /``: where the live console will be; a placeholder page until it comes."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import HTMLResponse

__all__ = ["console"]

_PAGE: Final = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>stockflow</title></head>
<body>
<h1>stockflow</h1>
<p>The live console (services, RED metrics, breakers, lag, stock) comes later.</p>
<p>Meanwhile: the API is described at <a href="/docs">/docs</a>; get a token with
<code>stockflow token --user alice --role customer</code>.</p>
</body>
</html>
"""


async def console(_request: Request) -> HTMLResponse:
    return HTMLResponse(_PAGE)
