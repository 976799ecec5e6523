"""The daemon's HTTP endpoints: /healthz, /readyz, /metrics and POST /webhook.

A stdlib ThreadingHTTPServer: four routes do not need a framework, and a slow client (or a
webhook passed on to the leader) occupies only its own thread. The handlers only translate
between HTTP and the `Endpoints` the daemon provides.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from syncer.daemon.webhook import MAX_BODY

log = logging.getLogger(__name__)


class Endpoints(Protocol):
    def healthz(self) -> tuple[int, str]: ...

    def readyz(self) -> tuple[int, str]: ...

    def exposition(self) -> tuple[bytes, str]: ...

    def webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]: ...


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[::1]:PORT` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 0.0.0.0:8080 or :8080)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class _Handler(BaseHTTPRequestHandler):
    server: DaemonHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "syncer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's signature
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, text: str) -> None:
        self._send(status, (text.rstrip("\n") + "\n").encode(), "text/plain; charset=utf-8")

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, (json.dumps(data) + "\n").encode(), "application/json")

    def do_GET(self) -> None:
        endpoints = self.server.endpoints
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._text(*endpoints.healthz())
        elif path == "/readyz":
            self._text(*endpoints.readyz())
        elif path == "/metrics":
            body, content_type = endpoints.exposition()
            self._send(HTTPStatus.OK, body, content_type)
        elif path == "/webhook":
            self._text(HTTPStatus.METHOD_NOT_ALLOWED, "POST a push event to /webhook")
        else:
            self._text(HTTPStatus.NOT_FOUND, "not found: try /healthz, /readyz, /metrics or POST /webhook")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/webhook":
            self._text(HTTPStatus.NOT_FOUND, "not found: only /webhook accepts POST")
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            self._text(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
            return
        length = int(length_header)
        if length > MAX_BODY:
            self.close_connection = True
            self._text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is larger than {MAX_BODY} bytes")
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, data = self.server.endpoints.webhook(headers, body)
        self._json(status, data)


class DaemonHTTPServer(ThreadingHTTPServer):
    """Serves `endpoints` on its own thread; port 0 picks a free port (see `address`)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], endpoints: Endpoints) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.endpoints = endpoints
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
