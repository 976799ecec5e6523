"""Slow and hostile clients cannot exhaust the daemon's HTTP server (issue 11, report 6).

Bounded load on 127.0.0.1 only: a few hundred half-sent requests for a few seconds. Each test
uses the server's real defaults except shorter timeouts, so that they run in seconds; the
limits passed are checked to be the ones in force (a test that cannot fail is a defect).
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from syncer.daemon import http as daemon_http
from syncer.daemon.http import DaemonHTTPServer
from syncer.daemon.logs import JsonFormatter
from tests.unit.test_daemon_http import Endpoints as FixedEndpoints

HALF_OPEN = 300


class Endpoints(FixedEndpoints):
    """Fixed answers; webhooks wait until `release` is set (a request busy being answered)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.release.set()

    def webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        self.release.wait(10)
        return 202, {"triggered": []}


def start(endpoints: Endpoints, **limits: Any) -> DaemonHTTPServer:
    """A server with the given limits (HTTPLimits fields); before the fix there were none."""
    if "limits" in inspect.signature(DaemonHTTPServer).parameters:
        server = DaemonHTTPServer(("127.0.0.1", 0), endpoints,
                                  limits=daemon_http.HTTPLimits(**limits))  # type: ignore[attr-defined]
    else:
        server = DaemonHTTPServer(("127.0.0.1", 0), endpoints)
    server.start()
    return server


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("syncer.daemon.http")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def healthz(port: int) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, time.monotonic() - started
    except OSError:
        return 0, time.monotonic() - started


def half_open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the blank line never comes
    return sock


def test_half_sent_requests_neither_pile_up_threads_nor_starve_health_checks(json_log: io.StringIO) -> None:
    endpoints = Endpoints()
    server = start(endpoints, header_timeout=3.0, max_connections=32)
    port = server.address[1]
    threads_before = threading.active_count()
    sockets = [half_open(port) for _ in range(HALF_OPEN)]
    try:
        answers = []
        peak_threads = 0
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            answers.append(healthz(port))
            peak_threads = max(peak_threads, threading.active_count())
            time.sleep(0.1)
        assert all(status == 200 for status, _ in answers), answers
        assert max(seconds for _, seconds in answers) < 1.0
        assert peak_threads - threads_before <= 32 + 2, f"{peak_threads - threads_before} threads for {HALF_OPEN} clients"
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
    assert "Traceback" not in json_log.getvalue()
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert lines and all(line["logger"] == "syncer.daemon.http" and "client" in line for line in lines)


def test_a_client_trickling_its_headers_is_closed_at_the_deadline(json_log: io.StringIO) -> None:
    server = start(Endpoints(), header_timeout=1.0)
    sock = socket.create_connection(("127.0.0.1", server.address[1]), timeout=5)
    started = time.monotonic()
    closed_after = None
    try:
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.2)
                if sock.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except socket.timeout:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
    finally:
        sock.close()
        server.stop()
    assert closed_after is not None and closed_after < 3.0, "the slow client was not closed"
    (line,) = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert "did not send its request within 1s" in line["message"]


def test_every_connection_busy_means_a_fast_503(json_log: io.StringIO) -> None:
    endpoints = Endpoints()
    endpoints.release.clear()
    server = start(endpoints, max_connections=4)
    port = server.address[1]
    busy = []
    try:
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            busy.append(sock)
        time.sleep(0.3)
        status, seconds = healthz(port)
        assert (status, seconds < 1.0) == (503, True)
    finally:
        endpoints.release.set()
        for sock in busy:
            sock.close()
        server.stop()


def test_a_client_hanging_up_mid_body_is_one_log_line_and_no_traceback(
    json_log: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start(Endpoints())
    sock = socket.create_connection(("127.0.0.1", server.address[1]), timeout=5)
    sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"ref\":")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
    time.sleep(0.2)
    sock.close()
    deadline = time.monotonic() + 20  # a loaded machine answers late; the line is what counts
    while not json_log.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop()
    assert "Traceback" not in capsys.readouterr().err
    (line,) = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert line["client"].startswith("127.0.0.1:") and "went away" in line["message"]


def test_the_server_header_does_not_give_the_python_version() -> None:
    server = start(Endpoints())
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.address[1]}/healthz", timeout=5) as response:
            assert response.headers["Server"] == "syncer"
    finally:
        server.stop()
