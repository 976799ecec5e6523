"""The daemon's HTTP endpoints: /healthz, /readyz, /metrics and POST /webhook.

A stdlib ThreadingHTTPServer: four routes do not need a framework, and a slow client (or a
webhook passed on to the leader) occupies only its own thread. The handlers only translate
between HTTP and the `Endpoints` the daemon provides. `LimitedHTTPServer` and
`LimitedHandler` are the machinery without the routes: the dashboard (`syncer.dashboard`)
serves its pages on them, under the same limits.

The server faces whatever can reach the pod, so a client may not hold it:
- every connection has a deadline for its request line and headers, and another for its
  body; a reaper thread closes connections past them (a client trickling one byte at a time
  would outlast a plain socket timeout);
- at most `max_connections` are open (one thread each). When all are taken, the connection
  that has waited longest for its request is dropped to make room, so a probe from the
  kubelet is served however many idle or half-sent connections pile up; only when every
  connection is busy being answered is a new one refused at once with 503;
- a dropped client is one structured log line, never a traceback on stderr;
- the Server header says `syncer`, not the Python version.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from syncer.daemon.webhook import MAX_BODY

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ":8080"
"""All interfaces, as Argo CD and Flux serve metrics and probes: the kubelet probes the pod's
IP and Prometheus scrapes it. Outside a cluster, `--listen 127.0.0.1:8080` keeps it local."""


class Endpoints(Protocol):
    def healthz(self) -> tuple[int, str]: ...

    def readyz(self) -> tuple[int, str]: ...

    def exposition(self) -> tuple[bytes, str]: ...

    def webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]: ...


@dataclass(frozen=True)
class HTTPLimits:
    """How long and how many clients may hold the server."""

    header_timeout: float = 10.0
    """Seconds to send the request line and headers (and how long a keep-alive connection
    may sit idle between requests)."""
    body_timeout: float = 10.0
    """Seconds to send the body (webhook payloads are at most 1 MiB)."""
    max_connections: int = 64
    refused_log_interval: float = 10.0
    """Refusals are counted and logged at most this often, not one line each."""


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[::1]:PORT` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8080, or :8080 for all interfaces)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@dataclass
class _Connection:
    sock: socket.socket
    client: str
    waiting_since: float
    deadline: float | None
    """When the client must have sent what it owes; None while its request is answered."""
    waiting_for: str = "its request"
    dropped: bool = False


class _Connections:
    """The open connections, their deadlines, and the bound on how many there are."""

    def __init__(self, limits: HTTPLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._open: dict[int, _Connection] = {}
        self._refused = 0
        self._refused_logged = 0.0

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def admit(self, sock: socket.socket, client: str) -> bool:
        """Register a new connection; False when it must be refused (every one is busy)."""
        now = time.monotonic()
        victim = None
        with self._lock:
            if len(self._open) >= self.limits.max_connections:
                waiting = [c for c in self._open.values() if c.deadline is not None]
                if not waiting:
                    self._count_refusal(now)
                    return False
                victim = min(waiting, key=lambda c: c.waiting_since)
                del self._open[id(victim.sock)]
            self._open[id(sock)] = _Connection(sock, client, now, now + self.limits.header_timeout)
        if victim is not None:
            self._drop(victim, f"dropped to make room: it had not sent {victim.waiting_for} after "
                               f"{now - victim.waiting_since:.1f}s and all {self.limits.max_connections} "
                               "connections were taken")
        return True

    def waiting(self, sock: socket.socket, what: str, timeout: float) -> None:
        with self._lock:
            connection = self._open.get(id(sock))
            if connection is not None:
                now = time.monotonic()
                connection.waiting_since, connection.deadline, connection.waiting_for = now, now + timeout, what
        if connection is None:  # dropped meanwhile
            raise ConnectionAbortedError("the connection was dropped")

    def answering(self, sock: socket.socket) -> None:
        with self._lock:
            connection = self._open.get(id(sock))
            if connection is not None:
                connection.deadline = None

    def forget(self, sock: socket.socket) -> bool:
        """Unregister a closed connection; False when it was dropped (and logged) before."""
        with self._lock:
            return self._open.pop(id(sock), None) is not None

    def reap(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [c for c in self._open.values() if c.deadline is not None and c.deadline <= now]
            for connection in late:
                del self._open[id(connection.sock)]
        for connection in late:
            self._drop(connection, f"did not send {connection.waiting_for} within "
                                   f"{now - connection.waiting_since:.0f}s")

    def _drop(self, connection: _Connection, why: str) -> None:
        connection.dropped = True
        log.info("http: client %s %s; closed", connection.client, why,
                 extra={"client": connection.client, "dropped": why})
        try:
            connection.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it
        except OSError:
            pass

    def _count_refusal(self, now: float) -> None:
        self._refused += 1
        if now - self._refused_logged >= self.limits.refused_log_interval:
            log.warning("http: refused %d connection(s) with 503: all %d connections are busy answering",
                        self._refused, self.limits.max_connections,
                        extra={"refused": self._refused, "max_connections": self.limits.max_connections})
            self._refused, self._refused_logged = 0, now


def _client(address: Any) -> str:
    return f"{address[0]}:{address[1]}"


_REFUSAL_BODY = b"too many connections: retry later\n"
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nServer: syncer\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY))


class LimitedHandler(BaseHTTPRequestHandler):
    """A request handler under the server's limits; subclasses add the routes."""

    server: LimitedHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "syncer"

    def setup(self) -> None:
        # A per-operation bound for writes to a client that stops reading; reads are bounded
        # by the deadlines the reaper enforces (which are shorter).
        super().setup()
        self.connection.settimeout(2 * (self.server.limits.header_timeout + self.server.limits.body_timeout))

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's signature
        log.debug("%s %s", self.address_string(), format % args)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's signature
        log.info("http: client %s: %s", _client(self.client_address), format % args,
                 extra={"client": _client(self.client_address)})

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ValueError) as error:  # reset, broken pipe, a socket shut by the reaper
            if self.server.connections.forget(self.request):
                client = _client(self.client_address)
                log.info("http: client %s went away: %s", client, error.__class__.__name__,
                         extra={"client": client, "dropped": str(error)})

    def handle_one_request(self) -> None:
        self.server.connections.waiting(self.request, "its request", self.server.limits.header_timeout)
        super().handle_one_request()

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

    def read_body(self, max_bytes: int) -> bytes | None:
        """The request's body, read under the body deadline; None when it was refused (411,
        413: the answer is sent and the connection closes)."""
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            self._text(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
            return None
        length = int(length_header)
        if length > max_bytes:
            self.close_connection = True
            self._text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is larger than {max_bytes} bytes")
            return None
        self.server.connections.waiting(self.request, "the request body", self.server.limits.body_timeout)
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionAbortedError(f"the body ended after {len(body)} of {length} bytes")
        self.server.connections.answering(self.request)
        return body


class _Handler(LimitedHandler):
    server: DaemonHTTPServer

    def do_GET(self) -> None:
        self.server.connections.answering(self.request)
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
            self.close_connection = True
            self._text(HTTPStatus.NOT_FOUND, "not found: only /webhook accepts POST")
            return
        body = self.read_body(MAX_BODY)
        if body is None:
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, data = self.server.endpoints.webhook(headers, body)
        self._json(status, data)


class LimitedHTTPServer(ThreadingHTTPServer):
    """Serves `handler` on its own thread under `limits`; port 0 picks a free port (see
    `address`)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[LimitedHandler], *,
                 limits: HTTPLimits = HTTPLimits()) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.limits = limits
        self.connections = _Connections(limits)
        self._thread: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.admit(request, _client(client_address)):
            try:
                request.setblocking(False)
                request.send(_REFUSAL)
            except OSError:
                pass
            super().shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.connections.forget(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A handler failed unexpectedly: one log record (with the traceback as a field in JSON
        logs), not the stdlib's traceback printed on stderr."""
        log.error("http: error while answering %s", client_address[0], exc_info=True)

    def _reap(self) -> None:
        interval = min(self.limits.header_timeout, self.limits.body_timeout, 1.0) / 4
        while not self._stopped.wait(interval):
            self.connections.reap()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._reaper = threading.Thread(target=self._reap, name="http-reaper", daemon=True)
        self._thread.start()
        self._reaper.start()

    def stop(self) -> None:
        self._stopped.set()
        self.shutdown()
        self.server_close()
        for thread in (self._thread, self._reaper):
            if thread is not None:
                thread.join()
        self._thread = self._reaper = None


class DaemonHTTPServer(LimitedHTTPServer):
    """Serves the daemon's `endpoints` (see the module docstring)."""

    def __init__(self, address: tuple[str, int], endpoints: Endpoints, *, limits: HTTPLimits = HTTPLimits()) -> None:
        super().__init__(address, _Handler, limits=limits)
        self.endpoints = endpoints
