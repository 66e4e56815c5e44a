"""A tiny HTTP service for the process tests (run as a script, never imported).

``GET /readyz`` answers 200 once ``READY_AFTER`` seconds have passed (503 before),
``GET /metrics`` a fixed exposition, ``GET /env/NAME`` the variable's value. It listens on
``127.0.0.1:$PORT``, exits 0 on SIGTERM (or ignores it with ``IGNORE_TERM=1``) and exits
with ``EXIT_CODE`` after ``EXIT_AFTER`` seconds if that is set.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METRICS = b"""# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{path="/a"} 2.0
http_requests_total{path="/b"} 3.0
# HELP child_up Up.
# TYPE child_up gauge
child_up 1.0
"""

ready_at = time.monotonic() + float(os.environ.get("READY_AFTER", "0"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/readyz":
            status, body = (200, b"ok") if time.monotonic() >= ready_at else (503, b"starting")
        elif self.path == "/metrics":
            status, body = 200, METRICS
        elif self.path.startswith("/env/"):
            value = os.environ.get(self.path.removeprefix("/env/"))
            status, body = (404, b"") if value is None else (200, value.encode())
        else:
            status, body = 404, b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        return None


def on_term(signum: int, frame: object) -> None:
    sys.stdout.write("child.terminated\n")
    sys.stdout.flush()
    os._exit(0)


if os.environ.get("IGNORE_TERM") == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, on_term)
if "EXIT_AFTER" in os.environ:
    code = int(os.environ.get("EXIT_CODE", "0"))
    threading.Timer(float(os.environ["EXIT_AFTER"]), os._exit, (code,)).start()
server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
sys.stdout.write(f"child.started pid={os.getpid()}\n")
sys.stdout.flush()
server.serve_forever()
